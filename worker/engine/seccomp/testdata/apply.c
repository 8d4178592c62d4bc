/*
 * Test helper for kernel.test.ts, not part of the product: installs a compiled seccomp
 * program the way faasbox-init does (no_new_privs, then prctl), then either
 *
 *   apply PROGRAM probe        tries syscalls the filter must refuse or allow, prints one
 *                              "<check> <result>" line each, and finally execs /bin/true
 *   apply PROGRAM exec CMD...  execs CMD under the filter
 *
 * Every probe is chosen to be harmless if the filter were NOT installed (the mount
 * target does not exist, the new namespaces belong to this throwaway process), so a
 * broken compiler makes the test fail instead of changing the host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void die(const char *what) {
  fprintf(stderr, "apply: %s: %s\n", what, strerror(errno));
  exit(111);
}

static void install(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    die("open program");
  struct stat st;
  if (fstat(fd, &st) < 0)
    die("stat program");
  if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0) {
    fprintf(stderr, "apply: program size %lld is not a multiple of 8\n", (long long)st.st_size);
    exit(111);
  }
  struct sock_filter *insns = malloc(st.st_size);
  if (!insns || read(fd, insns, st.st_size) != st.st_size)
    die("read program");
  close(fd);
  struct sock_fprog prog = {.len = (unsigned short)(st.st_size / sizeof(struct sock_filter)), .filter = insns};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    die("no_new_privs");
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
    die("install filter");
}

/* Prints "ok" for success, else the errno's name. */
static void report(const char *check, long rc) {
  if (rc >= 0)
    printf("%s ok\n", check);
  else
    printf("%s %s\n", check, strerrorname_np(errno));
  fflush(stdout);
}

static void *thread_main(void *arg) { return arg; }

static void seccomp_mode(void) {
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "Seccomp:", 8) == 0)
      printf("seccomp_mode %d\n", atoi(line + 8));
  if (f)
    fclose(f);
}

/* Runs fn in a forked child and reports how the child ended. */
static void in_child(const char *check, void (*fn)(void)) {
  pid_t pid = fork();
  if (pid < 0) {
    report(check, -1);
    return;
  }
  if (pid == 0) {
    fn();
    _exit(0);
  }
  int status;
  if (waitpid(pid, &status, 0) < 0)
    die("waitpid");
  if (WIFSIGNALED(status))
    printf("%s signal=%s\n", check, sigabbrev_np(WTERMSIG(status)));
  else
    printf("%s exit=%d\n", check, WEXITSTATUS(status));
  fflush(stdout);
}

#if defined(__x86_64__)
/* getpid through the i386 ABI: seccomp sees AUDIT_ARCH_I386, which the filter must kill. */
static void i386_getpid(void) {
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  long ret = 20;
  __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
}
#endif

static void exit_seven(void) { _exit(7); }

static void probe(void) {
  seccomp_mode();
  report("getpid", getpid());
  report("unshare_newuts", unshare(CLONE_NEWUTS));
  report("mount", mount("none", "/nonexistent-faasbox-seccomp-probe", "tmpfs", 0, NULL));
  report("ptrace", ptrace(PTRACE_PEEKUSER, 1, NULL, NULL)); /* unfiltered: ESRCH, pid 1 is no tracee of ours */
  report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
  report("bpf", syscall(SYS_bpf, 0, NULL, 0));
  report("setns", setns(-1, 0));

  long child = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (child == 0)
    _exit(0);
  if (child > 0)
    waitpid((pid_t)child, NULL, 0);
  report("clone_newuser", child);
  report("clone3", syscall(SYS_clone3, NULL, 0));
#if defined(__x86_64__)
  report("x32_getpid", syscall(0x40000000 | SYS_getpid));
#endif
  report("socket_vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  report("socket_unix", s);
  int null = open("/dev/null", O_RDWR);
  char c = 'x';
  report("ioctl_tiocsti_high_bits", syscall(SYS_ioctl, null, (1UL << 32) | TIOCSTI, &c));
  report("personality_query", personality(0xffffffff));
  report("personality_read_implies_exec", personality(READ_IMPLIES_EXEC));

  in_child("fork", exit_seven);
  pthread_t t;
  int err = pthread_create(&t, NULL, thread_main, NULL);
  if (err == 0)
    pthread_join(t, NULL);
  errno = err;
  report("pthread_create", err == 0 ? 0 : -1);
#if defined(__x86_64__)
  in_child("i386_abi", i386_getpid);
#endif

  char *argv[] = {"/bin/true", NULL};
  execv(argv[0], argv);
  report("execve", -1);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[2], "probe") == 0) {
    install(argv[1]);
    probe();
  }
  if (argc >= 4 && strcmp(argv[2], "exec") == 0) {
    install(argv[1]);
    execvp(argv[3], argv + 3);
    die("exec");
  }
  fprintf(stderr, "usage: apply PROGRAM probe | apply PROGRAM exec CMD [ARG...]\n");
  return 2;
}
