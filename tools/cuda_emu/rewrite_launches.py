"""Turns `kernel<...><<<grid, block, smem, stream>>>(args);` into emu_launch(...) calls.

Arguments are split at top-level commas only, so `grid_for(rows, 8)` stays one argument."""
import sys


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def rewrite(src):
    out, n, i = "", 0, 0
    while True:
        j = src.find("<<<", i)
        if j < 0:
            return out + src[i:], n
        # the kernel expression: identifier with optional balanced <...> right before <<<
        k = j
        if src[k - 1] == ">":
            depth = 0
            while True:
                k -= 1
                if src[k] == ">":
                    depth += 1
                elif src[k] == "<":
                    depth -= 1
                    if depth == 0:
                        break
        while k > 0 and (src[k - 1].isalnum() or src[k - 1] in "_:"):
            k -= 1
        kernel = src[k:j]
        e = src.index(">>>", j)
        cfg = split_top(src[j + 3:e])
        # the argument list: balanced (...) after >>>
        a0 = e + 3
        assert src[a0] == "(", src[a0:a0 + 40]
        depth, a = 0, a0
        while True:
            if src[a] == "(":
                depth += 1
            elif src[a] == ")":
                depth -= 1
                if depth == 0:
                    break
            a += 1
        args = src[a0 + 1:a]
        smem = cfg[2] if len(cfg) > 2 else "0"
        out += src[i:k] + (f"emu_launch(reinterpret_cast<const void*>(&{kernel}), "
                           f"static_cast<unsigned>({cfg[0]}), static_cast<unsigned>({cfg[1]}), "
                           f"[&] {{ {kernel}({args}); }}, 1, static_cast<size_t>({smem}))")
        i = a + 1
        n += 1


src = open(sys.argv[1]).read()
out, n = rewrite(src)
out = out.replace('#include "cuda_common.cuh"', '#include "%s/cuda_common.cuh"' % sys.argv[3])
open(sys.argv[2], "w").write(out)
print(f"{sys.argv[1]}: {n} launches rewritten", file=sys.stderr)
