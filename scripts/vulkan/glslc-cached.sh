# glslc with a cache of its output, for ggml's vulkan-shaders-gen, which
# runs glslc about 2000 times per Vulkan build (most of its 10 minutes on 2
# cores): the Linux and the Windows Vulkan builds compile the same shaders
# with the same glslc, and the second must not pay for them again.
# scripts/vulkan-sdk.mjs writes this file into .whisper/ with three settings
# above this line: GLSLC (the real glslc), GLSLC_VERSION (its --version) and
# CACHE (the cache folder).
#
# A call is keyed on glslc's version, its arguments without the -o and -MF
# paths (which name the build folder), and the content of the folder its
# source file is in (the shaders include each other from there). On a hit
# the cached SPIR-V is copied to -o, and the -MD dependency file to -MF with
# its target rewritten to this call's -o. Only a compile that exits 0 and
# says nothing on stderr is stored (vulkan-shaders-gen takes any stderr as
# a failure), through a temporary file and a rename: two builds may share
# the cache at once. Anything else (-o -, --version) runs glslc as it is.
set -u
# Lengths and byte offsets below count bytes.
export LC_ALL=C

out= dep= input= next=
for arg in "$@"; do
  case "$next" in
    o) out=$arg; next=; continue ;;
    MF) dep=$arg; next=; continue ;;
  esac
  case "$arg" in
    -o) next=o ;;
    -MF) next=MF ;;
    -*) ;;
    *) input=$arg ;;
  esac
done
if [ -z "$out" ] || [ "$out" = - ] || [ -z "$input" ] || [ ! -f "$input" ]; then
  exec "$GLSLC" "$@"
fi

# The source folder's content: every file under it, by name and bytes.
folder=$(cd "$(dirname "$input")" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
# The arguments without the output paths, one per line (no argument holds a newline here).
key=$(
  {
    printf '%s\n' "$GLSLC_VERSION" "$folder"
    skip=
    for arg in "$@"; do
      if [ -n "$skip" ]; then skip=; continue; fi
      case "$arg" in -o | -MF) skip=1; continue ;; esac
      printf '%s\n' "$arg"
    done
  } | sha256sum | cut -c1-64
)
entry="$CACHE/$(printf %s "$key" | cut -c1-2)/$key"

if [ -f "$entry.spv" ] && { [ -z "$dep" ] || [ -f "$entry.d" ]; }; then
  if [ -n "$dep" ]; then
    { printf '%s' "$out"; cat "$entry.d"; } >"$dep.$$" && mv -f "$dep.$$" "$dep" || exit 1
  fi
  cp "$entry.spv" "$out.$$" && mv -f "$out.$$" "$out" && exit 0
  exit 1
fi

errors=$(mktemp) || exit 1
"$GLSLC" "$@" 2>"$errors"
status=$?
if [ "$status" -eq 0 ] && [ ! -s "$errors" ] && [ -f "$out" ]; then
  mkdir -p "$(dirname "$entry")"
  stored=1
  if [ -n "$dep" ]; then
    # Kept without its target (this call's -o path), which a hit writes anew.
    head=$(head -c "${#out}" "$dep" 2>/dev/null)
    if [ "$head" = "$out" ]; then
      tail -c +"$((${#out} + 1))" "$dep" >"$entry.d.$$" && mv -f "$entry.d.$$" "$entry.d" || stored=
    else
      stored=
    fi
  fi
  # The .spv last: its presence is what makes a hit.
  if [ -n "$stored" ]; then
    cp "$out" "$entry.spv.$$" && mv -f "$entry.spv.$$" "$entry.spv"
  fi
  rm -f "$entry.d.$$" "$entry.spv.$$"
fi
cat "$errors" >&2
rm -f "$errors"
exit "$status"
