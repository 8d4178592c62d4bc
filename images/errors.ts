export type ImageErrorCode =
  | 'USAGE'
  | 'UNKNOWN_IMAGE'
  | 'RECIPE_INVALID'
  | 'MISSING_SOURCE'
  | 'MISSING_LIBRARY'
  | 'BUILD_FAILED';

/** Anything that stops an image from being built; `code` is stable, the message names the path and a hint. */
export class ImageBuildError extends Error {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImageBuildError';
  }
}
