/*
 * ipcs for the critest busybox image (Debian's busybox-static has no ipcs
 * applet): lists the System V shared memory segments (-m), message queues
 * (-q) and semaphore arrays (-s) of the IPC namespace, all three without a
 * flag, in util-linux's layout, from /proc/sysvipc. Built at test time with
 * `gcc -static -Os`.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Prints the rows of /proc/sysvipc/<kind>: key, id, owner (uid), perms and
 * the columns `extra` names, taken from the file's own header. */
static void list(const char *title, const char *kind, const char *header,
                 const char *const *columns, int ncolumns) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/sysvipc/%s", kind);
  printf("\n------ %s --------\n%s\n", title, header);
  FILE *file = fopen(path, "r");
  if (!file)
    return;
  char line[1024];
  char *names[32];
  int nnames = 0;
  if (fgets(line, sizeof(line), file)) {
    for (char *tok = strtok(line, " \t\n"); tok && nnames < 32; tok = strtok(NULL, " \t\n"))
      names[nnames++] = strdup(tok);
  }
  while (fgets(line, sizeof(line), file)) {
    char *values[32];
    int nvalues = 0;
    for (char *tok = strtok(line, " \t\n"); tok && nvalues < 32; tok = strtok(NULL, " \t\n"))
      values[nvalues++] = tok;
    const char *key = "0", *perms = "0", *uid = "0", *id = "0";
    for (int i = 0; i < nnames && i < nvalues; i++) {
      if (!strcmp(names[i], "key"))
        key = values[i];
      else if (!strcmp(names[i], "perms"))
        perms = values[i];
      else if (!strcmp(names[i], "uid"))
        uid = values[i];
      else if (!strcmp(names[i], "shmid") || !strcmp(names[i], "msqid") || !strcmp(names[i], "semid"))
        id = values[i];
    }
    long long k = 0;
    sscanf(key, "%lld", &k);
    unsigned int p = 0;
    sscanf(perms, "%o", &p);
    printf("0x%08llx %-10s %-10s %-10o", (unsigned long long)(unsigned int)k, id, uid, p & 0777);
    for (int c = 0; c < ncolumns; c++) {
      const char *value = "";
      for (int i = 0; i < nnames && i < nvalues; i++)
        if (!strcmp(names[i], columns[c]))
          value = values[i];
      printf(" %-10s", value);
    }
    printf("\n");
  }
  fclose(file);
}

int main(int argc, char **argv) {
  int shm = 0, msg = 0, sem = 0, opt;
  while ((opt = getopt(argc, argv, "mqsa")) != -1) {
    switch (opt) {
    case 'm': shm = 1; break;
    case 'q': msg = 1; break;
    case 's': sem = 1; break;
    case 'a': shm = msg = sem = 1; break;
    default:
      fprintf(stderr, "usage: ipcs [-m] [-q] [-s] [-a]\n");
      return 1;
    }
  }
  if (!shm && !msg && !sem)
    shm = msg = sem = 1;
  if (msg) {
    static const char *const c[] = {"cbytes", "qnum"};
    list("Message Queues", "msg",
         "key        msqid      owner      perms      used-bytes messages", c, 2);
  }
  if (shm) {
    static const char *const c[] = {"size", "nattch"};
    list("Shared Memory Segments", "shm",
         "key        shmid      owner      perms      bytes      nattch     status", c, 2);
  }
  if (sem) {
    static const char *const c[] = {"nsems"};
    list("Semaphore Arrays", "sem",
         "key        semid      owner      perms      nsems", c, 1);
  }
  printf("\n");
  return 0;
}
