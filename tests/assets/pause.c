/*
 * The pause program of the cri-tests pause image: like Kubernetes'
 * build/pause/linux/pause.c. It sleeps until SIGINT or SIGTERM (then exits 0)
 * and, as PID 1 of a pod's namespaces, reaps every zombie reparented to it.
 * Built at test time with `gcc -static -Os`.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "cri-tests-3.8"

static void sigdown(int signo) {
  static const char msg[] = "Shutting down, got signal\n";
  (void)signo;
  (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
  _exit(0);
}

static void sigreap(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
}

int main(int argc, char **argv) {
  int i;
  for (i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "-v")) {
      printf("pause.c %s\n", VERSION);
      return 0;
    }
  }

  if (getpid() != 1)
    /* Not an error because pause sees use outside of infra containers. */
    fprintf(stderr, "Warning: pause should be the first process\n");

  struct sigaction down = {0};
  down.sa_handler = sigdown;
  if (sigaction(SIGINT, &down, NULL) < 0)
    return 1;
  if (sigaction(SIGTERM, &down, NULL) < 0)
    return 2;

  struct sigaction reap = {0};
  reap.sa_handler = sigreap;
  reap.sa_flags = SA_NOCLDSTOP;
  if (sigaction(SIGCHLD, &reap, NULL) < 0)
    return 3;

  for (;;)
    pause();
  fprintf(stderr, "Error: infinite loop terminated\n");
  return 42;
}
