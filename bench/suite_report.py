"""The GPU suite's table (`bench.suite`): one markdown page from `suite.json`'s figures, a section per part."""
from __future__ import annotations

from typing import Any

from bench.floors import attention_line


def spread(x: dict[str, float], scale: float = 1.0, fmt: str = ",.0f") -> str:
    return " / ".join(format(x[k] * scale, fmt) for k in ("min", "median", "max"))


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def floors_section(f: dict[str, Any]) -> list[str]:
    bw, fl = f["copy_bandwidth"], f["matmul_flops"]
    lines = [f"Batch {f['batch']} ({f['prompt_tokens']} prompt tokens), {f['new_tokens']} new tokens, {f['dtype']} on "
             f"{f['device']}, {f['repeats']} repeats. Copy bandwidth {spread(bw, 1e-9, '.1f')} GB/s copied, matmul "
             f"{spread(fl, 1e-12, '.2f')} TFLOP/s (min / median / max; the floors use the max).", ""]
    rows = [[r["step"], spread(r["seconds"], 1e3, ".2f"), f"{r['memory_s'] * 1e3:.3f}", f"{r['compute_s'] * 1e3:.3f}",
             spread(r["ratio"], 1.0, ".2f")] for r in f["rows"]]
    lines += table(["step", "ms min / median / max", "memory floor ms", "compute floor ms",
                    "x floor min / median / max"], rows)
    return lines + ([""] + [attention_line(f["attention"])] if "attention" in f else [])


def generation_section(g: dict[str, Any], roofline: dict[str, Any]) -> list[str]:
    names = [n for n in ("hf", "vllm") if g["rows"] and n in g["rows"][0]]
    label = {"hf": "HF", "vllm": "vLLM"}
    gbps = roofline.get("value") or 0.0
    lines = [g["vllm_skipped"], ""] if g.get("vllm_skipped") else []
    lines += [f"Weights {g['weight_bytes'] / 2**20:,.0f} MiB; roofline {gbps:,.0f} GB/s ({roofline.get('source')}); "
              "the fraction is the weight bytes a decode step reads per second (tokens/s / batch x weight bytes) "
              "over it." + (f" vLLM engine start {g['engine_start_s']:.1f} s." if g.get("engine_start_s") else ""), ""]
    rows = []
    for r in g["rows"]:
        cells = [str(r["batch"]), *(spread(r[n]) for n in names)]
        cells += [f"{r['ratio']:.2f}x"] if "vllm" in names else []
        cells += [f"{r[n]['median'] / r['batch'] * g['weight_bytes'] / 1e9 / gbps:.1%}" if gbps else "-" for n in names]
        rows.append(cells)
    head = ["batch", *(f"{label[n]} tok/s min / median / max" for n in names),
            *(["vLLM/HF"] if "vllm" in names else []), *(f"{label[n]} of roofline" for n in names)]
    return lines + table(head, rows)


def memory_section(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["mode"], "error: " + r["error"], "", ""])
            continue
        t = r["step_s"]
        rows.append([r["mode"], f"{r['trained'] / 1e6:.2f}M", f"{r['step_peak_mb']:,.0f}",
                     f"{min(t):.3f} / {sorted(t)[len(t) // 2]:.3f} / {max(t):.3f}"])
    ok = next((r for r in results if "error" not in r), None)
    lines = [f"{ok['preset']} shape ({ok['parameters'] / 1e6:.1f}M parameters), {ok['batch']} x {ok['seq_len']} "
             f"tokens, one SFT step with a fresh AdamW, {ok['device']}.", ""] if ok else []
    return lines + table(["mode", "trained", "step peak MiB over the loaded model", "step s min / median / max"], rows)


def checkability_section(c: dict[str, Any]) -> list[str]:
    rows = []
    for r in c["rounds"]:
        top = sorted(r["phases"].items(), key=lambda kv: -kv[1])[:3]
        rows.append([str(r["round"]), f"{r['wall_s']:.1f}", f"{r['play_s']:.1f}", f"{r['tokens_per_s']:,.0f}",
                     ", ".join(f"{k} {v:.1f} s" for k, v in top),
                     ", ".join(f"{k} {v:.2f}" for k, v in r["metrics"].items() if isinstance(v, (int, float)))])
    return [f"Prover: a random {c['prover']}-shaped model; verifier: the shipped tiny one.", ""] + \
        table(["round", "wall s", "play s", "tokens/s", "most time", "headline metrics"], rows)


SECTIONS = {"floors": ("Steps against their floors", floors_section),
            "generation": ("Generation: HF agent and vLLM agent", None),
            "memory": ("Learner step: peak memory and time", memory_section),
            "checkability": ("Checkability: two rounds", checkability_section)}


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"# GPU suite{' (dry run: tiny shapes on the CPU)' if m['dry_run'] else ''}: {m['device']}", "",
             f"torch {m['torch']}, Python {m['python']}, {m['cpus']} CPUs, load average "
             f"{', '.join(f'{x:.2f}' for x in m['load_average'])} at the start; {results['total_s']:.0f} s in all.", ""]
    lines += table(["part", "status", "seconds"], [[n, p["status"], f"{p['seconds']:.0f}"]
                                                   for n, p in results["parts"].items()])
    for name, (title, fn) in SECTIONS.items():
        p = results["parts"].get(name)
        lines += ["", f"## {title}", ""]
        if not p or p.get("figures") is None:
            lines.append(f"No figures: {p['status'] if p else 'not run'}" + (f" ({p['last_line']})" if p and
                                                                            p.get("last_line") else ""))
        elif name == "generation":
            lines += generation_section(p["figures"], results.get("roofline_gbps", {}))
        else:
            lines += fn(p["figures"])
    return "\n".join(lines)
