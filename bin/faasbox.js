#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('faasbox: not built yet; run `npm install` (or `npm run build`) in the faasbox checkout first');
    process.exit(1);
  }
  throw err;
});
