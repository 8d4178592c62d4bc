/**
 * The deployment's secret key (common/secrets.ts seals env values with it): from
 * FAASBOX_SECRET_KEY (or secretKey in the config file), else the state dir's
 * `secret-key` file (0600), which `faasbox up` creates on its first start. Every
 * service of a deployment must use the same key.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SecretBox, parseSecretKey } from '../common/secrets.js';

export function secretKeyFile(stateDir: string): string {
  return path.join(stateDir, 'secret-key');
}

/**
 * The key's box; undefined when none is configured and create is false (such a service
 * refuses, with SECRET_KEY_INVALID, every function that has env values).
 */
export function loadSecretBox(cfg: { secretKey?: string; stateDir: string }, opts: { create: boolean }): SecretBox | undefined {
  if (cfg.secretKey) return new SecretBox(parseSecretKey(cfg.secretKey, 'FAASBOX_SECRET_KEY'));
  const file = secretKeyFile(cfg.stateDir);
  if (!existsSync(file)) {
    if (!opts.create) return undefined;
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, `${SecretBox.generateKey().toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another process created it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return new SecretBox(parseSecretKey(readFileSync(file, 'utf8'), file));
}
