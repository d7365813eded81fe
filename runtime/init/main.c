/* main.c: bottle-init's entry point; everything else lives in init.h's files
 * so the C tests can drive the same code. */
#include "init.h"

extern char **environ;

int main(int argc, char **argv) { return init_main(argc, argv, environ); }
