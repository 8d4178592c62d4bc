/*
 * The protocol between the worker (Node.js) and faasbox-init, the C pre-exec stage.
 * worker/engine/native/protocol.ts holds the same constants; a unit test checks
 * that the two agree.
 *
 *   worker (node)                 faasbox-init "monitor"            container init (pid 1)        user process (pid 2)
 *   -------------                 ----------------------            ----------------------        --------------------
 *   spawn, fd3=config, fd4=sync
 *   write config records, close ─▶ read all of fd 3
 *                                  clone(NEWPID|NEWNS|NEWUTS|...) ──▶ join cgroups (cgroup.procs)
 *        ◀──────────────────────── "pid <host pid of init>"          unshare(NEWCGROUP)
 *                                  waitpid(init)                     mounts, pivot_root, ops,
 *                                                                    hostname, loopback up
 *        ◀─────────────────────────────────────────────────────────── "ready"       (parked: the pool can hold it)
 *   ready = both "pid" and "ready" arrived, in either order: init runs before clone
 *   returns in the monitor, and on cgroup v2 (cloned into its cgroup) it skips the
 *   cgroup.procs write, so its "ready" can overtake the monitor's "pid".
 *   "start" ─────────────────────────────────────────────────────────▶ fork ─────────────────────▶ fds, rlimits, groups,
 *                                                                                                  uid/gid, caps, cwd,
 *                                                                                                  no_new_privs, seccomp,
 *        ◀──────────────────────────────────────────────────────────────────────────────────────── execve (or "error ...")
 *                                                                    reap, forward signals
 *        ◀─────────────────────────────────────────────────────────── "exit <wait status of pid 2>"
 *        ◀──────────────────────── "init-exit <wait status of init>"
 *                                  exit 0
 *
 * fd 3: config, a sequence of records until EOF: u32 type, u32 length, payload
 *       (native byte order). Numbers inside payloads are decimal ASCII; lists of
 *       fields inside one payload are NUL-separated.
 * fd 4: sync, a stream socket carrying '\n'-terminated text messages (above). Any
 *       stage that fails writes "error <what>: <detail>" and exits with EXIT_BAIL.
 * fd 5 .. 5+n-1: handed to the user process as fds 3 .. 3+n-1 (REC_EXTRA_FDS = n).
 * fds 0-2: the user process's stdio; the monitor and init close their copies.
 *
 * Zygote mode (`faasbox-init --zygote`): one long-lived process per engine launches the
 * monitors, so that the worker (a ~60 MB multi-threaded Node process) forks only once.
 *
 *   worker (node)                          zygote                         monitor (as above)
 *   -------------                          ------                         ------------------
 *   spawn --zygote, fd 3 = control ──────▶ PDEATHSIG, SIGCHLD reaped
 *   socketpairs; one control message:      by the kernel (SA_NOCLDWAIT)
 *     data = config records (as on fd 3)
 *     SCM_RIGHTS = stdin, stdout, stderr,
 *                  sync, extra 0..n-1 ───▶ recvmsg, fork ─────────────────▶ SIGCHLD/SIGPIPE default,
 *   close its copies of those fds          close its copies, loop            PDEATHSIG, fds to 0,1,2,4,5..,
 *        ◀──────────────────────────────────────────────────────────────── parse config from memory,
 *                                                                           "pid ..." ... "init-exit ..." , EOF
 *   close control (or die) ──────────────▶ EOF: exit once every monitor has ended
 *                                          (worker died: PDEATHSIG kills the zygote, then
 *                                           each monitor and init by their own PDEATHSIG)
 *
 * fd ZYGOTE_FD_CONTROL: a SOCK_SEQPACKET socket: one message per container, so a bad
 *       request can never desynchronise the next one. The data is at most
 *       ZYGOTE_MAX_CONFIG bytes; ZYGOTE_FDS_FIXED + n fds ride along (n <= the extra fd
 *       limit, and must equal REC_EXTRA_FDS). A request the zygote cannot serve is
 *       answered "error zygote: <why>" on its sync fd; the zygote carries on.
 */
/*
 * Seeds (cgroup v1): a container init made ahead of demand, so that the slow parts of a
 * start happen off the request path: joining a v1 cgroup is a migration, which waits for
 * an RCU grace period (up to tens of ms) when none happened recently, and a new network
 * namespace costs ~0.4 ms. A seed is an ordinary zygote request whose config holds
 * REC_SEED, REC_CLONE_FLAGS (without CLONE_NEWNS: the mount namespace must be copied
 * when the container's rootfs is already mounted) and REC_CGROUP_PROCS of a cgroup the
 * worker made for it; its one extra fd is the seed's control socket (SOCK_SEQPACKET).
 *
 *   worker (node)                      monitor                    seed init (pid 1)
 *   -------------                      -------                    -----------------
 *   zygote request with REC_SEED ────▶ clone(flags) ────────────▶ join cgroups
 *        ◀──────────────────────────── "pid <host pid>"
 *        ◀───────────────────────────────────────────────────────── "seeded", recvmsg(control)
 *   (create) rename the cgroup to the
 *   container's, write its limits;
 *   one message on control: config
 *   records, SCM_RIGHTS = stdin, stdout,
 *   stderr, extra 0..n-1 ─────────────────────────────────────────▶ fds to 0,1,2,5..; config
 *                                                                   replaces the seed's; the
 *                                                                   namespaces must match;
 *                                                                   unshare(NEWNS); then as
 *                                                                   any init ("ready", ...)
 *
 * The seed's sync socket becomes the container's. EOF on control: the seed exits unused.
 */
/*
 * User namespaces (REC_USERNS). The monitor drops its supplementary groups and clones
 * init with CLONE_NEWUSER among the flags; the worker writes the maps, init waits:
 *
 *   worker (node)                      monitor                    init (pid 1)
 *        ◀──────────────────────────── "pid <host pid>"            join cgroups (still host uid 0)
 *   /proc/PID/setgroups "deny",                                    read sync: "mapped"
 *   uid_map, gid_map "0 <host id> <n>"
 *   "mapped" ─────────────────────────────────────────────────────▶ open the rootfs and the bind
 *                                                                   sources (as host uid 0, the
 *                                                                   owner of the 0700 state dir),
 *                                                                   setresgid/setresuid(0): the
 *                                                                   range's first host id; then as
 *                                                                   any init (rootfs, "ready", ...)
 *
 * Mounts inherited into the new namespace are locked: init binds the rootfs onto itself
 * before pivot_root, and what needs the host's view (proc, whose mount in a user namespace
 * must find a proc mount already visible; device nodes, which it may not mknod) is
 * mounted by REC_PREMOUNT / REC_BIND before pivot_root rather than after.
 * `faasbox-init --userns` only makes an empty user namespace (for idmapped mounts), says
 * "ready" on stdout and lives until stdin's EOF.
 */
#ifndef FAASBOX_PROTOCOL_H
#define FAASBOX_PROTOCOL_H

#define FD_CONFIG 3
#define FD_SYNC 4
#define FD_EXTRA_BASE 5

#define EXIT_BAIL 125

/* zygote mode */
#define ZYGOTE_FD_CONTROL 3
#define ZYGOTE_FDS_FIXED 4      /* stdin, stdout, stderr, sync; then the extra fds */
#define ZYGOTE_MAX_EXTRA_FDS 64 /* also the limit on REC_EXTRA_FDS */
#define ZYGOTE_MAX_CONFIG 196608 /* below the default unix socket send buffer (wmem_default) */

/* seeds */
#define SEED_FDS_FIXED 3 /* stdin, stdout, stderr (the sync socket is the seed's); then the extra fds */

/* config record types */
#define REC_ARG 1           /* one argv element, repeated in order */
#define REC_ENV 2           /* one "KEY=VALUE", repeated */
#define REC_CWD 3           /* working directory inside the container */
#define REC_ROOTFS 4        /* host path of the mounted rootfs (an overlay mount point) */
#define REC_HOSTNAME 5
#define REC_UID 6
#define REC_GID 7
#define REC_GROUP 8         /* supplementary gid, repeated */
#define REC_CLONE_FLAGS 9   /* namespaces for clone(); CLONE_NEWCGROUP is done by unshare after joining */
#define REC_CGROUP_PROCS 10 /* a cgroup.procs file that init joins, repeated */
#define REC_BIND 11         /* before pivot_root: "src\0dst\0flags"; dst resolved inside rootfs, created if missing */
#define REC_MOUNT 12        /* after pivot_root: "src\0dst\0fstype\0flags\0data" */
#define REC_MKDIR 13        /* after pivot_root: "path\0mode" (octal) */
#define REC_MKNOD 14        /* after pivot_root: "path\0mode\0major\0minor" (mode octal, incl. S_IFCHR) */
#define REC_SYMLINK 15      /* after pivot_root: "target\0linkpath" */
#define REC_MASK 16         /* after pivot_root: hide a path (bind /dev/null on files, empty ro tmpfs on dirs) */
#define REC_READONLY 17     /* after pivot_root: bind-remount a path read-only */
#define REC_RLIMIT 18       /* "resource\0soft\0hard" (decimal; "-1" is RLIM_INFINITY) */
#define REC_CAPS 19         /* bitmask of capabilities the user process keeps (decimal), default none */
#define REC_SECCOMP 20      /* struct sock_filter[] (8 bytes each), installed just before execve */
#define REC_NO_NEW_PRIVS 21 /* "1" */
#define REC_LOOPBACK_UP 22  /* "1": bring lo up in the new network namespace */
#define REC_EXTRA_FDS 23    /* count of extra fds */
#define REC_OOM_SCORE_ADJ 24
#define REC_PROPAGATION 25  /* mount flags for "/" in the new mount ns (MS_REC|MS_PRIVATE or MS_REC|MS_SLAVE) */
#define REC_UMASK 26        /* octal */
#define REC_SETSID 27       /* "1": the user process starts a new session */
#define REC_CGROUP_DIR 28   /* cgroup v2 dir: init is cloned into it (CLONE_INTO_CGROUP) and skips REC_CGROUP_PROCS; those stay as the fallback */
#define REC_SEED 29         /* "1": make a seed (below); the request carries only clone flags, cgroups and 1 extra fd */
#define REC_USERNS 30       /* "1": CLONE_NEWUSER is in the clone flags; see "User namespaces" above */
#define REC_PREMOUNT 31     /* before pivot_root and REC_BIND: "src\0dst\0fstype\0flags\0data"; dst resolved inside rootfs */

#endif
