"""Turns `kernel<...><<<grid, block, smem, stream>>>(args);` into emu_launch(...) calls."""
import re
import sys

src = open(sys.argv[1]).read()
pat = re.compile(r'([A-Za-z_]\w*(?:<[^;<>]*>)?)<<<([^,]+),\s*([^,]+),\s*[^,]+,\s*[^>]+>>>\(([^;]*)\);')
out, n = pat.subn(lambda m: f'emu_launch(static_cast<unsigned>({m.group(2)}), static_cast<unsigned>({m.group(3)}), '
                            f'[&] {{ {m.group(1)}({m.group(4)}); }});', src)
out = out.replace('#include "cuda_common.cuh"', '#include "%s/cuda_common.cuh"' % sys.argv[3])
open(sys.argv[2], "w").write(out)
print(f"{sys.argv[1]}: {n} launches rewritten", file=sys.stderr)
