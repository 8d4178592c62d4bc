/**
 * The exit codes of every `faasbox image` subcommand (and `ctr run --image`), one table so
 * that a script sees the same number for the same failure whichever command it ran.
 */
const EXIT: Record<string, number> = {
  USAGE: 2,
  VALIDATION_FAILED: 2,
  IMAGE_NOT_FOUND: 3,
  REGISTRY_UNAUTHORIZED: 4,
  DIGEST_MISMATCH: 5,
  IMAGE_INVALID: 5,
  IMAGE_TOO_LARGE: 5,
  IMAGE_IN_USE: 6,
};

export const IMAGE_EXIT_HELP = `Exit codes: 0 ok, 2 usage (bad option or reference), 3 no such image (image, tag or
platform), 4 the registry refused the credentials, 5 digest mismatch, invalid or too large
image, 6 image in use, 1 anything else (registry unavailable, ...).`;

/** The exit code for an error of `code`; undefined for a code the table does not name. */
export const imageExitCode = (code: string | undefined): number | undefined => (code ? EXIT[code] : undefined);
