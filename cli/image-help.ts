/**
 * The usage of `faasbox image ls | inspect | rm | prune`, apart from the commands: --help
 * answers without loading the store (or the engine's native bindings).
 */
const STATE = `  --state-dir DIR   state directory (default $FAASBOX_STATE_DIR or /var/lib/faasbox)
  -h, --help        this help`;

export const STORE_USAGE: Record<string, string> = {
  ls: `Usage: faasbox image ls [--json]

The images in the store: tags, digest, size of their blobs, platform, when pulled, and
who uses them (containers running from them; the pools for faasbox/* runtime images).

  --json            a JSON array, one object per image
${STATE}`,
  inspect: `Usage: faasbox image inspect REF [--json]

One image: its record, its config (Entrypoint, Cmd, Env, WorkingDir, User, StopSignal)
and its layers with their sizes. REF: repo[:tag], repo@sha256:..., sha256:..., or 12+ hex
digits of a digest.

  --json            as one JSON object
${STATE}`,
  rm: `Usage: faasbox image rm REF [--force] [--json]

Untags REF (every tag of the image when REF is a digest). When no tag is left and nothing
uses the image, the image goes with its blobs and layers no other image keeps.
An image a live container runs from, or a faasbox/* runtime image, is refused (exit 6)
unless --force, which untags only: prune removes the image once nothing uses it.

  --force           untag even when in use
  --json            print what was done as JSON
${STATE}`,
  prune: `Usage: faasbox image prune [--json]

Removes every image no tag names and no live container uses, every blob and layer no
remaining image (or container) needs, and leftovers in tmp/ older than 15 minutes.
Containers of a crashed owner keep their images until "faasbox ctr gc" collects them.

  --json            print what was removed as JSON
${STATE}`,
};

