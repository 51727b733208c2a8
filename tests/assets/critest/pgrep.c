/*
 * pgrep for the critest busybox image (Debian's busybox-static has no pgrep
 * applet): `pgrep [-f] [-x] PATTERN` prints the pid of every process whose
 * name (or, with -f, whole command line) matches the extended regular
 * expression PATTERN, one per line, and exits 0 when one matched, 1 when none
 * did, 2 on a usage error. Built at test time with `gcc -static -Os`.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0)
    return -1;
  buf[n] = '\0';
  return (int)n;
}

int main(int argc, char **argv) {
  int full = 0, exact = 0, opt;
  while ((opt = getopt(argc, argv, "fx")) != -1) {
    if (opt == 'f')
      full = 1;
    else if (opt == 'x')
      exact = 1;
    else
      return 2;
  }
  if (optind != argc - 1) {
    fprintf(stderr, "usage: pgrep [-f] [-x] PATTERN\n");
    return 2;
  }
  char *pattern = argv[optind];
  if (exact) {
    size_t len = strlen(pattern) + 5;
    char *anchored = malloc(len);
    if (!anchored)
      return 3;
    snprintf(anchored, len, "^(%s)$", pattern);
    pattern = anchored;
  }
  regex_t re;
  if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "pgrep: invalid pattern: %s\n", argv[optind]);
    return 2;
  }
  DIR *proc = opendir("/proc");
  if (!proc) {
    perror("pgrep: /proc");
    return 3;
  }
  pid_t self = getpid();
  int found = 0;
  struct dirent *entry;
  while ((entry = readdir(proc)) != NULL) {
    if (!isdigit((unsigned char)entry->d_name[0]))
      continue;
    pid_t pid = (pid_t)atoi(entry->d_name);
    if (pid == self)
      continue;
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, full ? "cmdline" : "comm");
    int n = read_file(path, text, sizeof(text));
    if (n <= 0)
      continue;
    if (full) {
      for (int i = 0; i < n - 1; i++)
        if (text[i] == '\0')
          text[i] = ' ';
    } else if (text[n - 1] == '\n') {
      text[n - 1] = '\0';
    }
    if (regexec(&re, text, 0, NULL, 0) == 0) {
      printf("%d\n", pid);
      found = 1;
    }
  }
  closedir(proc);
  return found ? 0 : 1;
}
