/*
 * faasbox-init: the single-threaded pre-exec stage of a faasbox container.
 *
 * Why C: Node.js runs several threads from its first instruction, and unshare(2),
 * setns(2), seccomp and credential changes apply to the calling thread only. Like runc's
 * nsexec and crun, this small program does the part that must happen in a
 * single-threaded process, between clone(2) and execve(2).
 *
 * It holds no policy. The worker decides every namespace, mount, limit, capability and
 * syscall filter, and sends them as data (protocol.h); this program carries them out in
 * a fixed order and dies through bail() on the first failure, reporting on the sync fd.
 *
 * Three processes (and, in zygote mode, a long-lived fourth that forks the monitors;
 * see protocol.h):
 *   monitor  in the host's namespaces; clones init, reports its pid, waits for it, and
 *            reports how it ended (so the worker learns of a SIGKILLed init too).
 *   init     pid 1 of the new pid namespace: joins the cgroup, builds the root, parks
 *            until "start", then forks the user process, forwards signals to it, reaps
 *            orphans, and reports its wait status. When init exits the kernel kills
 *            everything left in the namespace.
 *   user     drops everything and execs the command.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"

#define MAX_LIST 256
#define SYNC_FD_HIGH 200

struct op {
  int type;
  const char *f[5]; /* NUL-separated fields of the record */
  int nf;
};

struct config {
  const char *argv[MAX_LIST + 1];
  int argc;
  const char *envp[MAX_LIST + 1];
  int envc;
  const char *cwd, *rootfs, *hostname, *oom_score_adj;
  uid_t uid;
  gid_t gid;
  gid_t groups[64];
  int ngroups;
  unsigned long clone_flags, propagation;
  const char *cgroup_procs[16];
  const char *cgroup_dir; /* cgroup v2: clone init straight into it */
  int joined_by_clone;
  int ncgroups;
  struct op binds[64];
  int nbinds;
  struct op ops[MAX_LIST];
  int nops;
  struct {
    int resource;
    rlim_t soft, hard;
  } rlimits[32];
  int nrlimits;
  uint64_t caps;
  struct sock_filter *seccomp;
  size_t seccomp_len;
  int no_new_privs, loopback_up, extra_fds, setsid, has_umask;
  int seed; /* this init is a seed: it waits for a container's config (protocol.h) */
  int userns; /* CLONE_NEWUSER: init waits for its id maps ("mapped"), then becomes root of them */
  struct op premounts[16];
  int npremounts;
  mode_t umask;
};

static struct config cfg;
static int sync_fd = FD_SYNC;
static const char *stage = "monitor";

/* The one way out on failure: tell the worker what and why, then exit. */
static void __attribute__((noreturn, format(printf, 1, 2))) bail(const char *fmt, ...) {
  int saved = errno;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (saved)
    dprintf(sync_fd, "error %s: %s: %s\n", stage, msg, strerror(saved));
  else
    dprintf(sync_fd, "error %s: %s\n", stage, msg);
  _exit(EXIT_BAIL);
}

static unsigned long long num(const char *s, int base) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, base);
  if (errno || *end)
    bail("bad number '%s' in config", s);
  return v;
}

static rlim_t rlim(const char *s) { return strcmp(s, "-1") == 0 ? RLIM_INFINITY : (rlim_t)num(s, 10); }

/* ---------------------------------------------------------------- config --- */

static char *read_all(int fd, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf)
    bail("malloc");
  for (;;) {
    if (n == cap && !(buf = realloc(buf, cap *= 2)))
      bail("realloc");
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      bail("read config");
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *len = n;
  return buf;
}

static int split(char *p, uint32_t len, const char **out, int max) {
  int n = 0;
  char *end = p + len;
  while (p < end && n < max) {
    out[n++] = p;
    p += strnlen(p, (size_t)(end - p)) + 1;
  }
  return n;
}

#define PUSH(arr, count, max, what)                                                                                    \
  do {                                                                                                                 \
    if ((count) >= (max))                                                                                              \
      bail("too many %s records", what);                                                                               \
  } while (0)

static void parse_config(char *buf, size_t len) {
  size_t off = 0;
  while (off + 8 <= len) {
    uint32_t type, rlen;
    memcpy(&type, buf + off, 4);
    memcpy(&rlen, buf + off + 4, 4);
    off += 8;
    if (rlen > len - off || rlen == 0 || buf[off + rlen - 1] != '\0') {
      /* Every payload is sent NUL-terminated, except the binary seccomp program. */
      if (!(type == REC_SECCOMP && rlen <= len - off))
        bail("malformed config record %u (length %u)", type, rlen);
    }
    char *p = buf + off;
    off += rlen;
    struct op *op;
    switch (type) {
    case REC_ARG:
      PUSH(cfg.argv, cfg.argc, MAX_LIST, "arg");
      cfg.argv[cfg.argc++] = p;
      break;
    case REC_ENV:
      PUSH(cfg.envp, cfg.envc, MAX_LIST, "env");
      cfg.envp[cfg.envc++] = p;
      break;
    case REC_CWD: cfg.cwd = p; break;
    case REC_ROOTFS: cfg.rootfs = p; break;
    case REC_HOSTNAME: cfg.hostname = p; break;
    case REC_UID: cfg.uid = (uid_t)num(p, 10); break;
    case REC_GID: cfg.gid = (gid_t)num(p, 10); break;
    case REC_GROUP:
      PUSH(cfg.groups, cfg.ngroups, 64, "group");
      cfg.groups[cfg.ngroups++] = (gid_t)num(p, 10);
      break;
    case REC_CLONE_FLAGS: cfg.clone_flags = num(p, 10); break;
    case REC_CGROUP_PROCS:
      PUSH(cfg.cgroup_procs, cfg.ncgroups, 16, "cgroup");
      cfg.cgroup_procs[cfg.ncgroups++] = p;
      break;
    case REC_BIND:
      PUSH(cfg.binds, cfg.nbinds, 64, "bind");
      op = &cfg.binds[cfg.nbinds++];
      op->type = (int)type;
      op->nf = split(p, rlen, op->f, 5);
      if (op->nf != 3)
        bail("bind record needs 3 fields");
      break;
    case REC_MOUNT:
    case REC_MKDIR:
    case REC_MKNOD:
    case REC_SYMLINK:
    case REC_MASK:
    case REC_READONLY: {
      static const int want[] = {[REC_MOUNT] = 5, [REC_MKDIR] = 2, [REC_MKNOD] = 4,
                                 [REC_SYMLINK] = 2, [REC_MASK] = 1, [REC_READONLY] = 1};
      PUSH(cfg.ops, cfg.nops, MAX_LIST, "mount op");
      op = &cfg.ops[cfg.nops++];
      op->type = (int)type;
      op->nf = split(p, rlen, op->f, 5);
      if (op->nf != want[type])
        bail("record %u needs %d fields, has %d", type, want[type], op->nf);
      break;
    }
    case REC_RLIMIT: {
      const char *f[3];
      if (split(p, rlen, f, 3) != 3)
        bail("rlimit record needs 3 fields");
      PUSH(cfg.rlimits, cfg.nrlimits, 32, "rlimit");
      cfg.rlimits[cfg.nrlimits].resource = (int)num(f[0], 10);
      cfg.rlimits[cfg.nrlimits].soft = rlim(f[1]);
      cfg.rlimits[cfg.nrlimits].hard = rlim(f[2]);
      cfg.nrlimits++;
      break;
    }
    case REC_CAPS: cfg.caps = num(p, 10); break;
    case REC_SECCOMP:
      if (rlen % sizeof(struct sock_filter) != 0)
        bail("seccomp program length %u is not a multiple of 8", rlen);
      cfg.seccomp = (struct sock_filter *)p;
      cfg.seccomp_len = rlen / sizeof(struct sock_filter);
      break;
    case REC_NO_NEW_PRIVS: cfg.no_new_privs = 1; break;
    case REC_LOOPBACK_UP: cfg.loopback_up = 1; break;
    case REC_EXTRA_FDS: cfg.extra_fds = (int)num(p, 10); break;
    case REC_OOM_SCORE_ADJ: cfg.oom_score_adj = p; break;
    case REC_PROPAGATION: cfg.propagation = num(p, 10); break;
    case REC_UMASK:
      cfg.umask = (mode_t)num(p, 8);
      cfg.has_umask = 1;
      break;
    case REC_SETSID: cfg.setsid = 1; break;
    case REC_CGROUP_DIR: cfg.cgroup_dir = p; break;
    case REC_SEED: cfg.seed = 1; break;
    case REC_USERNS: cfg.userns = 1; break;
    case REC_PREMOUNT:
      PUSH(cfg.premounts, cfg.npremounts, 16, "premount");
      op = &cfg.premounts[cfg.npremounts++];
      op->type = (int)type;
      op->nf = split(p, rlen, op->f, 5);
      if (op->nf != 5)
        bail("premount record needs 5 fields");
      break;
    default: bail("unknown config record type %u", type);
    }
  }
  if (off != len)
    bail("trailing bytes in config");
  if (cfg.seed)
    return; /* a seed's command and rootfs arrive with its container */
  if (cfg.argc == 0)
    bail("no command");
  if (!cfg.rootfs)
    bail("no rootfs");
  if (cfg.extra_fds < 0 || cfg.extra_fds > ZYGOTE_MAX_EXTRA_FDS)
    bail("extra fd count %d out of range", cfg.extra_fds);
}

/* -------------------------------------------------------------- rootfs --- */

/*
 * Opens path inside the rootfs (as O_PATH), creating missing components as
 * directories, or the last one as an empty file when want_file. RESOLVE_IN_ROOT
 * keeps symlinks in an image from pointing a host bind mount outside the rootfs.
 */
static int open_in_root(int rootfd, const char *path, int want_file) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    bail("path too long: %s", path);
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, rootfd, buf, &how, sizeof how);
  if (fd >= 0)
    return fd;
  if (errno != ENOENT)
    bail("openat2 %s", path);
  /* Walk and create: each prefix is resolved in-root again before creating below it. */
  char *slash = buf;
  while (*slash == '/')
    slash++;
  for (;;) {
    char *next = strchr(slash, '/');
    if (next)
      *next = '\0';
    int exists = (int)syscall(SYS_openat2, rootfd, buf, &how, sizeof how);
    if (exists >= 0) {
      close(exists);
    } else {
      if (errno != ENOENT)
        bail("openat2 %s", buf);
      char *base = strrchr(buf, '/');
      int parent = rootfd;
      const char *name = buf;
      if (base && base != buf) {
        *base = '\0';
        parent = (int)syscall(SYS_openat2, rootfd, buf, &how, sizeof how);
        *base = '/';
        if (parent < 0)
          bail("openat2 %s", buf);
        name = base + 1;
      } else if (base) {
        name = base + 1;
      }
      /* O_PATH fds cannot be used with mkdirat; reopen the parent as a directory. */
      char proc[64];
      int dirfd = parent;
      if (parent != rootfd) {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", parent);
        dirfd = open(proc, O_DIRECTORY | O_CLOEXEC);
        close(parent);
        if (dirfd < 0)
          bail("reopen parent of %s", path);
      }
      int rc;
      if (!next && want_file) {
        rc = openat(dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (rc >= 0)
          close(rc);
      } else {
        rc = mkdirat(dirfd, name, 0755);
      }
      if (dirfd != rootfd)
        close(dirfd);
      if (rc < 0 && errno != EEXIST)
        bail("create %s inside rootfs", buf);
    }
    if (!next)
      break;
    *next = '/';
    slash = next + 1;
  }
  fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
  if (fd < 0)
    bail("openat2 %s after creating it", path);
  return fd;
}

static void bind_into_rootfs(int rootfd, const struct op *op) {
  const char *src = op->f[0], *dst = op->f[1];
  unsigned long flags = num(op->f[2], 10);
  struct stat st;
  if (stat(src, &st) < 0)
    bail("bind source %s", src);
  int fd = open_in_root(rootfd, dst, !S_ISDIR(st.st_mode));
  char target[64];
  snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
  if (mount(src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
    bail("bind %s on %s", src, dst);
  close(fd);
  unsigned long extra = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
  if (extra) {
    /* The old fd names the covered directory; reopen to reach the new mount. */
    fd = open_in_root(rootfd, dst, 0);
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    /* In a user namespace the flags of a mount from the host are locked: a remount that
     * would clear one (noexec of the state tmpfs under a slot, an atime mode) is EPERM. */
    struct statvfs sv;
    if (cfg.userns && statvfs(target, &sv) == 0) {
      static const struct { unsigned long st, ms; } keep[] = {
          {ST_RDONLY, MS_RDONLY}, {ST_NOSUID, MS_NOSUID}, {ST_NODEV, MS_NODEV}, {ST_NOEXEC, MS_NOEXEC},
          {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
      for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (sv.f_flag & keep[i].st)
          extra |= keep[i].ms;
    }
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | extra, NULL) < 0)
      bail("remount %s with flags %lu", dst, extra);
    close(fd);
  }
  unsigned long prop = flags & (MS_SHARED | MS_SLAVE | MS_PRIVATE);
  if (prop) {
    fd = open_in_root(rootfd, dst, 0);
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    if (mount(NULL, target, NULL, prop, NULL) < 0)
      bail("set propagation of %s", dst);
    close(fd);
  }
}

/* A mount made before pivot_root, its target resolved inside the rootfs (REC_PREMOUNT). */
static void premount_in_rootfs(int rootfd, const struct op *op) {
  int fd = open_in_root(rootfd, op->f[1], 0);
  char target[64];
  snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
  if (mount(op->f[0], target, op->f[2][0] ? op->f[2] : NULL, num(op->f[3], 10), op->f[4][0] ? op->f[4] : NULL) < 0)
    bail("mount %s on %s", op->f[2], op->f[1]);
  close(fd);
}

static void mkdir_p(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        bail("mkdir %s", buf);
      *p = '/';
    }
  }
  if (mkdir(buf, 0755) < 0 && errno != EEXIST)
    bail("mkdir %s", buf);
}

static void run_op(const struct op *op) {
  struct stat st;
  switch (op->type) {
  case REC_MOUNT: {
    unsigned long flags = num(op->f[3], 10);
    const char *data = op->f[4][0] ? op->f[4] : NULL;
    mkdir_p(op->f[1]);
    if (mount(op->f[0], op->f[1], op->f[2][0] ? op->f[2] : NULL, flags & ~MS_REMOUNT, data) < 0)
      bail("mount %s on %s", op->f[2], op->f[1]);
    if ((flags & MS_BIND) && (flags & MS_RDONLY) &&
        mount(NULL, op->f[1], NULL, MS_REMOUNT | MS_BIND | (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)),
              NULL) < 0)
      bail("remount %s read-only", op->f[1]);
    break;
  }
  case REC_MKDIR:
    if (mkdir(op->f[0], (mode_t)num(op->f[1], 8)) < 0 && errno != EEXIST)
      bail("mkdir %s", op->f[0]);
    break;
  case REC_MKNOD:
    if (mknod(op->f[0], (mode_t)num(op->f[1], 8),
              makedev((unsigned)num(op->f[2], 10), (unsigned)num(op->f[3], 10))) < 0 &&
        errno != EEXIST)
      bail("mknod %s", op->f[0]);
    break;
  case REC_SYMLINK:
    if (symlink(op->f[0], op->f[1]) < 0 && errno != EEXIST)
      bail("symlink %s", op->f[1]);
    break;
  case REC_MASK:
    if (lstat(op->f[0], &st) < 0) {
      if (errno == ENOENT)
        break;
      bail("stat %s", op->f[0]);
    }
    if (S_ISDIR(st.st_mode)) {
      if (mount("tmpfs", op->f[0], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0") < 0)
        bail("mask %s", op->f[0]);
    } else if (mount("/dev/null", op->f[0], NULL, MS_BIND, NULL) < 0) {
      bail("mask %s", op->f[0]);
    }
    break;
  case REC_READONLY:
    if (mount(op->f[0], op->f[0], NULL, MS_BIND | MS_REC, NULL) < 0) {
      if (errno == ENOENT)
        break;
      bail("bind %s", op->f[0]);
    }
    if (mount(NULL, op->f[0], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
      bail("remount %s read-only", op->f[0]);
    break;
  }
}

static void build_root(void) {
  stage = "rootfs";
  /* Modes in the config are exact; the user process gets its own umask later. */
  umask(0);
  /* Nothing mounted from here on may propagate back to the host. */
  if (mount(NULL, "/", NULL, cfg.propagation ? cfg.propagation : (MS_REC | MS_PRIVATE), NULL) < 0)
    bail("set propagation of /");
  /* In a new user namespace every inherited mount is locked, and pivot_root refuses a
   * locked new root: a bind of the rootfs onto itself is a mount of this namespace's own. */
  if (cfg.userns && mount(cfg.rootfs, cfg.rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    bail("bind rootfs %s onto itself", cfg.rootfs);
  int rootfd = open(cfg.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    bail("open rootfs %s", cfg.rootfs);
  int pinned[64], npinned = 0;
  if (cfg.userns) {
    /* Still the host's uid 0 here, so the state dir's 0700 directories (root's) can be
     * walked as their owner; the namespace's root could not. The bind sources are
     * opened now and reached later through /proc/self/fd, which skips that walk. */
    static char names[64][32];
    for (int i = 0; i < cfg.nbinds; i++) {
      if ((pinned[npinned] = open(cfg.binds[i].f[0], O_PATH | O_CLOEXEC)) < 0)
        bail("open bind source %s", cfg.binds[i].f[0]);
      snprintf(names[i], sizeof names[i], "/proc/self/fd/%d", pinned[npinned++]);
      cfg.binds[i].f[0] = names[i];
    }
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
      bail("become root of the user namespace");
  }
  for (int i = 0; i < cfg.npremounts; i++)
    premount_in_rootfs(rootfd, &cfg.premounts[i]);
  for (int i = 0; i < cfg.nbinds; i++)
    bind_into_rootfs(rootfd, &cfg.binds[i]);
  for (int i = 0; i < npinned; i++)
    close(pinned[i]);

  /* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves no
   * path back to the host's filesystem (runc's trick; no temporary directory needed). */
  if (fchdir(rootfd) < 0)
    bail("chdir %s", cfg.rootfs);
  close(rootfd);
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    bail("pivot_root %s", cfg.rootfs);
  if (umount2(".", MNT_DETACH) < 0)
    bail("detach old root");
  if (chdir("/") < 0)
    bail("chdir /");

  for (int i = 0; i < cfg.nops; i++)
    run_op(&cfg.ops[i]);
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    bail("socket for loopback");
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    bail("get lo flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    bail("bring lo up");
  close(s);
}

/* --------------------------------------------------------- user process --- */

static void move_extra_fds(void) {
  /* The sync fd moves out of the way first: the extra fds are renumbered onto 3.. */
  int fd = fcntl(FD_SYNC, F_DUPFD_CLOEXEC, SYNC_FD_HIGH);
  if (fd < 0)
    bail("dup sync fd");
  sync_fd = fd;
  /* Ascending order is safe: each source (5+i) is read before a later target (3+j) can equal it. */
  for (int i = 0; i < cfg.extra_fds; i++)
    if (dup2(FD_EXTRA_BASE + i, 3 + i) < 0)
      bail("dup2 extra fd %d", i);
  int first_free = 3 + cfg.extra_fds;
  if (first_free < sync_fd && syscall(SYS_close_range, first_free, sync_fd - 1, 0) < 0)
    bail("close_range");
  if (syscall(SYS_close_range, sync_fd + 1, ~0U, 0) < 0)
    bail("close_range");
}

static void drop_privileges(void) {
  for (int cap = 0; cap <= 63; cap++) {
    if (cfg.caps & (1ULL << cap))
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL)
        break; /* past the kernel's last capability */
      bail("drop capability %d from the bounding set", cap);
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
    bail("clear ambient capabilities");
  if (cfg.caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    bail("keep capabilities across setuid");
  /* A user namespace's setgroups is "deny"; the monitor dropped the host's groups before clone. */
  if (!(cfg.userns && cfg.ngroups == 0) && setgroups((size_t)cfg.ngroups, cfg.groups) < 0)
    bail("setgroups");
  if (setresgid(cfg.gid, cfg.gid, cfg.gid) < 0)
    bail("setresgid %u", cfg.gid);
  if (setresuid(cfg.uid, cfg.uid, cfg.uid) < 0)
    bail("setresuid %u", cfg.uid);
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2] = {0};
  for (int i = 0; i < 2; i++)
    data[i].effective = data[i].permitted = data[i].inheritable = (uint32_t)(cfg.caps >> (32 * i));
  if (syscall(SYS_capset, &hdr, data) < 0)
    bail("capset");
  /* A non-root process keeps capabilities across execve only through the ambient set. */
  for (int cap = 0; cfg.uid != 0 && cap <= 63; cap++)
    if ((cfg.caps & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      bail("raise ambient capability %d", cap);
}

/*
 * Raising a hard limit takes CAP_SYS_RESOURCE in the initial user namespace: a mapped
 * root cannot. Where the host's hard RLIMIT_NPROC is below ours (Debian's 6.12 VM: a few
 * thousand, from its memory; this host: 96362), init in a user namespace got EPERM,
 * so in userns mode the monitor sets them before clone and init inherits them.
 */
static void apply_rlimits(void) {
  for (int i = 0; i < cfg.nrlimits; i++) {
    struct rlimit rl = {cfg.rlimits[i].soft, cfg.rlimits[i].hard};
    if (setrlimit(cfg.rlimits[i].resource, &rl) < 0)
      bail("setrlimit %d", cfg.rlimits[i].resource);
  }
}

static void __attribute__((noreturn)) user_main(const sigset_t *oldmask) {
  stage = "exec";
  sigprocmask(SIG_SETMASK, oldmask, NULL);
  if (cfg.setsid && setsid() < 0)
    bail("setsid");
  move_extra_fds();
  if (!cfg.userns)
    apply_rlimits();
  if (cfg.has_umask)
    umask(cfg.umask);
  drop_privileges();
  if (chdir(cfg.cwd ? cfg.cwd : "/") < 0)
    bail("chdir %s", cfg.cwd ? cfg.cwd : "/");
  if (cfg.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    bail("set no_new_privs");
  if (cfg.seccomp_len) {
    struct sock_fprog prog = {.len = (unsigned short)cfg.seccomp_len, .filter = cfg.seccomp};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
      bail("install seccomp filter (%zu instructions)", cfg.seccomp_len);
  }
  cfg.envp[cfg.envc] = NULL;
  cfg.argv[cfg.argc] = NULL;
  environ = (char **)cfg.envp;
  execvp(cfg.argv[0], (char *const *)cfg.argv);
  int saved = errno;
  dprintf(sync_fd, "error exec: %s: %s\n", cfg.argv[0], strerror(saved));
  _exit(saved == ENOENT ? 127 : 126);
}

/*
 * Puts received fds where a spawned monitor would find them: the first nfixed at 0, 1, 2
 * (and FD_SYNC when nfixed is 4), the rest at FD_EXTRA_BASE... Everything is first
 * copied above every target, since a received fd may sit on another one's target.
 */
static void place_fds(const int *fds, int nfds, int nfixed) {
  int high[ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS];
  for (int i = 0; i < nfds; i++) {
    if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, FD_EXTRA_BASE + ZYGOTE_MAX_EXTRA_FDS)) < 0)
      bail("dup received fd %d", i);
    if (fds[i] == sync_fd)
      sync_fd = high[i]; /* bail() keeps a way to report */
    close(fds[i]);
  }
  for (int i = 0; i < nfds; i++) {
    int target = i < 3 ? i : i < nfixed ? FD_SYNC : FD_EXTRA_BASE + (i - nfixed);
    if (dup2(high[i], target) < 0)
      bail("dup2 received fd %d to %d", i, target);
    if (target == FD_SYNC)
      sync_fd = FD_SYNC;
  }
  /* The high copies and anything else above the targets: none may reach the container. */
  if (syscall(SYS_close_range, FD_EXTRA_BASE + (nfds - nfixed), ~0U, 0) < 0)
    bail("close_range");
}

/* Receives one message with fds; returns its length, 0 on a bare EOF. */
static ssize_t recv_request(int sock, char *buf, size_t cap, int *fds, int *nfds) {
  static union {
    struct cmsghdr align;
    char space[CMSG_SPACE(sizeof(int) * (ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS))];
  } control;
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space};
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (n < 0)
    bail("recvmsg on the control socket");
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count && *nfds < ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS; i++)
      memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  if (msg.msg_flags & MSG_TRUNC)
    bail("request larger than ZYGOTE_MAX_CONFIG");
  if (msg.msg_flags & MSG_CTRUNC)
    bail("request with more than %d fds", ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS);
  return n;
}

/* ------------------------------------------------------------------ init --- */

static int read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = read(fd, buf + n, 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    if (buf[n] == '\n')
      break;
    n++;
  }
  buf[n] = '\0';
  return (int)n;
}

static void write_file(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    bail("open %s", path);
  if (write(fd, value, strlen(value)) < 0)
    bail("write %s to %s", value, path);
  close(fd);
}

/*
 * A seed, already in its cgroups and namespaces, parks here until the worker hands it a
 * container (or drops it: EOF). The container's config replaces the seed's; only the
 * namespaces must agree, which the worker ensured and this checks.
 */
static void take_container(void) {
  static char buf[ZYGOTE_MAX_CONFIG + 1];
  stage = "seed";
  unsigned long seed_flags = cfg.clone_flags;
  dprintf(sync_fd, "seeded\n");
  int fds[ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS], nfds;
  ssize_t n = recv_request(FD_EXTRA_BASE, buf, sizeof buf, fds, &nfds);
  if (n == 0 && nfds == 0)
    _exit(0); /* dropped unused */
  close(FD_EXTRA_BASE);
  if (nfds < SEED_FDS_FIXED)
    bail("a container request needs %d fds, got %d", SEED_FDS_FIXED, nfds);
  place_fds(fds, nfds, SEED_FDS_FIXED);
  memset(&cfg, 0, sizeof cfg);
  parse_config(buf, (size_t)n);
  if (cfg.extra_fds != nfds - SEED_FDS_FIXED)
    bail("config names %d extra fds, the request carried %d", cfg.extra_fds, nfds - SEED_FDS_FIXED);
  unsigned long want = cfg.clone_flags & ~(unsigned long)(CLONE_NEWNS | CLONE_NEWCGROUP);
  if (want != seed_flags)
    bail("the container wants namespaces 0x%lx, the seed has 0x%lx", want, seed_flags);
  /* Copied now, not at clone: the host's mounts made since (the rootfs) must be in it. */
  if ((cfg.clone_flags & CLONE_NEWNS) && unshare(CLONE_NEWNS) < 0)
    bail("unshare mount namespace");
  stage = "init";
}

static void __attribute__((noreturn)) init_main(void) {
  stage = "init";
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    bail("set parent death signal");
  /* Born in its cgroup (CLONE_INTO_CGROUP): no migration, so no cgroup.procs write. */
  for (int i = 0; !cfg.joined_by_clone && i < cfg.ncgroups; i++)
    write_file(cfg.cgroup_procs[i], "0");
  /* A seed's container lives in the cgroup the seed joined (renamed by the worker). */
  if (cfg.seed)
    take_container();
  if (cfg.userns) {
    /* Until the worker has written the maps, this process is the host's uid 0 with
     * capabilities only in its new namespace, and no id it could become is mapped.
     * build_root then becomes the namespace's root (setresuid 0: the range's first host
     * id) once it holds the host paths it needs. */
    char line[64];
    if (read_line(sync_fd, line, sizeof line) < 0)
      _exit(0);
    if (strcmp(line, "mapped") != 0)
      bail("expected mapped, got '%s'", line);
  }
  /* After joining, so that the namespace's root is the container's own cgroup. */
  if ((cfg.clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
    bail("unshare cgroup namespace");
  if (cfg.oom_score_adj)
    write_file("/proc/self/oom_score_adj", cfg.oom_score_adj);
  build_root();
  stage = "init";
  if (cfg.hostname && sethostname(cfg.hostname, strlen(cfg.hostname)) < 0)
    bail("sethostname %s", cfg.hostname);
  if (cfg.loopback_up)
    loopback_up();
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  dprintf(sync_fd, "ready\n");
  char line[64];
  if (read_line(sync_fd, line, sizeof line) < 0)
    _exit(0); /* the worker went away while we were parked */
  if (strcmp(line, "start") != 0)
    bail("expected start, got '%s'", line);

  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t child = fork();
  if (child < 0)
    bail("fork user process");
  if (child == 0)
    user_main(&old);

  for (int fd = 0; fd <= 2; fd++)
    close(fd);
  for (int i = 0; i < cfg.extra_fds; i++)
    close(FD_EXTRA_BASE + i);
  if (cfg.no_new_privs)
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0)
      continue;
    if (sig == SIGCHLD) {
      int status;
      pid_t w;
      while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
        if (w == child) {
          dprintf(sync_fd, "exit %d\n", status);
          _exit(0);
        }
      }
    } else if (sig != SIGPIPE) {
      kill(child, sig);
    }
  }
}

/* --------------------------------------------------------------- monitor --- */

/* Runs with the config parsed, the parent death signal set and the fds in place. */
static int __attribute__((noreturn)) monitor(void) {
  unsigned long flags = cfg.clone_flags & ~(unsigned long)CLONE_NEWCGROUP;
  pid_t pid = -1;
  /* The host's supplementary groups (root's) would stay with init in its user namespace,
   * where setgroups is denied: drop them here, while the monitor can. */
  if (cfg.userns && setgroups(0, NULL) < 0)
    bail("drop supplementary groups");
  if (cfg.userns)
    apply_rlimits();
  if (cfg.cgroup_dir) {
    /* cgroup v2 (Linux 5.7+): create init inside its cgroup. Joining by a cgroup.procs
     * write is a migration, which takes cgroup_threadgroup_rwsem for writing and may wait
     * for an RCU grace period (milliseconds) on the container start path. */
    int cgfd = open(cfg.cgroup_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cgfd < 0)
      bail("open cgroup %s", cfg.cgroup_dir);
    struct clone_args args = {.flags = flags | CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgfd};
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      cfg.joined_by_clone = 1;
      init_main();
    }
    close(cgfd);
    /* Kernels without clone3 or CLONE_INTO_CGROUP: fall back to clone and a join by write. */
    if (pid < 0 && errno != ENOSYS && errno != E2BIG && errno != EINVAL)
      bail("clone3 into cgroup %s with flags 0x%lx", cfg.cgroup_dir, flags);
  }
  /* clone with a NULL stack behaves like fork: the child runs on a copy of this stack. */
  if (pid < 0)
    pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
  if (pid < 0)
    bail("clone with flags 0x%lx", flags);
  if (pid == 0)
    init_main();

  dprintf(sync_fd, "pid %d\n", pid);
  /* Hold no copy of the container's stdio or extra fds: their readers must see EOF
   * when the container's processes close them, not when the monitor exits. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd <= 2; fd++)
    if (null >= 0)
      dup2(null, fd);
  for (int i = 0; i < cfg.extra_fds; i++)
    close(FD_EXTRA_BASE + i);

  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      bail("waitpid init");
  }
  dprintf(sync_fd, "init-exit %d\n", status);
  _exit(0);
}

/* ---------------------------------------------------------------- zygote --- */

static pid_t zygote_pid;

/*
 * The forked child of the zygote becomes a monitor: the received fds go where a spawned
 * monitor would have found them (0, 1, 2, FD_SYNC, FD_EXTRA_BASE..).
 */
static void __attribute__((noreturn)) monitor_from_request(char *buf, size_t len, const int *fds, int nfds) {
  stage = "monitor";
  sync_fd = fds[3];
  /* The zygote's dispositions are inherited; the monitor must be able to waitpid its
   * init, and init relies on SIGCHLD being queued (SIG_IGN would discard it). */
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    bail("set parent death signal");
  if (getppid() != zygote_pid)
    bail("zygote exited before the container started");
  /* The zygote's control socket must not reach init. */
  close(ZYGOTE_FD_CONTROL);
  place_fds(fds, nfds, ZYGOTE_FDS_FIXED);
  parse_config(buf, len);
  if (cfg.extra_fds != nfds - ZYGOTE_FDS_FIXED)
    bail("config names %d extra fds, the request carried %d", cfg.extra_fds, nfds - ZYGOTE_FDS_FIXED);
  monitor();
}

/*
 * Serves launch requests until the worker closes the control socket. Nothing a request
 * carries is interpreted here (the monitor parses the config), so a bad request can only
 * fail its own monitor; what the zygote itself cannot do is reported on the request's
 * sync fd.
 */
static void __attribute__((noreturn)) zygote_main(void) {
  static char buf[ZYGOTE_MAX_CONFIG + 1];
  static union {
    struct cmsghdr align;
    char space[CMSG_SPACE(sizeof(int) * (ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS))];
  } control;
  stage = "zygote";
  sync_fd = 2; /* its own setup failures go to the worker's stderr */
  zygote_pid = getpid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    bail("set parent death signal");
  if (getppid() == 1)
    bail("worker exited before the zygote started");
  /* Monitors are reaped by the kernel; an error reply to a vanished worker must not kill us. */
  struct sigaction sa = {.sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT};
  if (sigaction(SIGCHLD, &sa, NULL) < 0)
    bail("sigaction SIGCHLD");
  signal(SIGPIPE, SIG_IGN);

  for (;;) {
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space};
    ssize_t n = recvmsg(ZYGOTE_FD_CONTROL, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      bail("recvmsg on the control socket");
    int fds[ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS], nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        continue;
      int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < count && nfds < (int)(sizeof fds / sizeof fds[0]); i++)
        memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (n == 0 && nfds == 0)
      break; /* EOF: the engine closed its launcher */

    const char *why = NULL;
    char detail[128];
    if (msg.msg_flags & MSG_TRUNC)
      why = "config larger than ZYGOTE_MAX_CONFIG";
    else if (msg.msg_flags & MSG_CTRUNC)
      why = "more fds than ZYGOTE_FDS_FIXED + ZYGOTE_MAX_EXTRA_FDS";
    else if (nfds < ZYGOTE_FDS_FIXED)
      why = "fewer fds than ZYGOTE_FDS_FIXED";
    if (!why) {
      pid_t pid = fork();
      if (pid == 0)
        monitor_from_request(buf, (size_t)n, fds, nfds);
      if (pid < 0) {
        snprintf(detail, sizeof detail, "fork: %s", strerror(errno));
        why = detail;
      }
    }
    if (why && nfds >= ZYGOTE_FDS_FIXED)
      dprintf(fds[3], "error zygote: %s\n", why);
    for (int i = 0; i < nfds; i++)
      close(fds[i]);
  }
  /* With SA_NOCLDWAIT, wait() returns ECHILD once every monitor has ended. */
  while (wait(NULL) >= 0 || errno == EINTR)
    ;
  _exit(0);
}

/*
 * `faasbox-init --userns`: an empty user namespace for the worker to write id maps into
 * and to open (/proc/PID/ns/user) as the mapping of idmapped mounts. Says "ready" on
 * stdout, then lives until stdin reaches EOF.
 */
static void __attribute__((noreturn)) userns_holder(void) {
  stage = "userns";
  sync_fd = 2;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    bail("set parent death signal");
  if (unshare(CLONE_NEWUSER) < 0)
    bail("unshare user namespace");
  if (write(1, "ready\n", 6) != 6)
    bail("write ready");
  char c;
  for (;;) {
    ssize_t r = read(0, &c, 1);
    if (r == 0 || (r < 0 && errno != EINTR))
      _exit(0);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--zygote") == 0)
    zygote_main();
  if (argc > 1 && strcmp(argv[1], "--userns") == 0)
    userns_holder();

  size_t len;
  char *buf = read_all(FD_CONFIG, &len);
  close(FD_CONFIG);
  parse_config(buf, len);

  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    bail("set parent death signal");
  if (getppid() == 1)
    bail("worker exited before the container started");
  monitor();
}
