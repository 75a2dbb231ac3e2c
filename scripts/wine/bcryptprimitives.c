/* For the Wine prefix of the tests only (scripts/wine.mjs), never shipped:
 * Rust's standard library (1.78 and later) gets random bytes from
 * ProcessPrng in bcryptprimitives.dll, which every Windows 10 has and Wine 8
 * lacks, so no Rust program loads there without this stand-in. It asks
 * Wine's BCryptGenRandom for the same bytes. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
    data += chunk;
    len -= chunk;
  }
  return TRUE;
}
