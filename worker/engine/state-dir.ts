/**
 * Where the engine keeps its state by default. A module of its own so that a command that
 * only needs the path (an image pull, `image ls`) does not load the engine, whose native
 * bindings and modules cost ~23 MB of RSS (measured: bench image's peak RSS).
 */
export const DEFAULT_STATE_DIR = '/var/lib/faasbox';
