/* FAKE, for fault injection: a program that dies on an instruction the CPU cannot run. */
int main(void) {
  __builtin_trap(); /* ud2 */
  return 0;
}
