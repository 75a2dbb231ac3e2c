/* FAKE, for fault injection: a vulkan-1.dll that, when a process loads it,
 * creates the file PW_FAKE_VULKAN_MARK names and ends the process (code 86).
 * It proves whether a run loaded the Vulkan loader at all. Its exports
 * (what the Vulkan build imports) are given as -D EXPORTS="X(name) ..." by
 * __test__/windows.test.mjs. */
#include <windows.h>

#define X(name) __declspec(dllexport) void name(void) {}
EXPORTS

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved) {
  (void)instance;
  (void)reserved;
  if (reason == DLL_PROCESS_ATTACH) {
    wchar_t mark[4096];
    if (GetEnvironmentVariableW(L"PW_FAKE_VULKAN_MARK", mark, 4096) > 0) {
      CloseHandle(CreateFileW(mark, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL));
    }
    ExitProcess(86);
  }
  return TRUE;
}
