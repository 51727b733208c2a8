/*
 * The entrypoint of the critest nonewprivs image, installed setuid root:
 * prints the effective uid it runs with, so a spec can tell whether
 * no_new_privs kept the setuid bit from taking effect. Built at test time with
 * `gcc -static -Os`.
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("Effective uid: %d\n", (int)geteuid());
  return 0;
}
