"""Print the markdown tables of RESULTS.md from the JSON files written by measure.py."""
import json
import sys


def pct(x):
    return f"{100 * x:.1f}%"


def main(eval_json, speed_jsons=()):
    with open(eval_json) as fh:
        r = json.load(fh)
    print("### Sets\n")
    print("| part | ids | crops |\n|---|---|---|")
    for k, v in r["sets"].items():
        print(f"| {k} | {v['ids']} | {v['crops']} |")
    print("\n### Configurations chosen on tune (<= 5% face-less boxed at full resolution)\n")
    print("| flip TTA | score | threshold | pixel thr | box_scale | tune recall | tune face-less boxed |")
    print("|---|---|---|---|---|---|---|")
    for c in r["tune_configs"]:
        print(f"| {c['flip_tta']} | {c['score_mode']} | {c['threshold']:.4f} | {c['pixel_threshold']} | {c['box_scale']} "
              f"| {pct(c['recall'])} | {pct(c['faceless_boxed'])} |")
    print("\n### Test identities (never tuned on)\n")
    print("| flip TTA | score | input | threshold (from) | recall | face-less boxed | detection rate | with face / face-less |")
    print("|---|---|---|---|---|---|---|---|")
    for t in r["test_rows"]:
        inp = {1: "128x64", 2: "64x32 (2x down)", 4: "32x16 (4x down)"}[t["scale"]]
        print(f"| {t['flip_tta']} | {t['score_mode']} | {inp} | {t['threshold']:.4f} ({t['threshold_from']}) "
              f"| {pct(t['recall'])} | {pct(t['faceless_boxed'])} | {pct(t['detection_rate'])} "
              f"| {t['with_face']} / {t['faceless']} |")
    for key in ("curve_test_x1", "curve_test_x2"):
        if key in r:
            print(f"\n### Curve `{key}` (chosen score mode, pixel thr / box scale as chosen)\n")
            print("| threshold | recall | face-less boxed | detection rate |\n|---|---|---|---|")
            for c in r[key]:
                print(f"| {c['threshold']:.4f} | {pct(c['recall'])} | {pct(c['faceless_boxed'])} | {pct(c['detection_rate'])} |")
    print("\n### Pixel coverage (test; thresholded soft mask dilated by d px)\n")
    print("| flip TTA | input | mask thr | dilate | face px covered | over-blur (non-face share) | area of crop |")
    print("|---|---|---|---|---|---|---|")
    ch = r["chosen"]
    for p in r["pixel"]:
        if p["set"] != "test":
            continue
        if p["mask_threshold"] in (0.02, 0.05, 0.1, 0.2) and p["dilate"] in (2, 3, 4, 5, 6, 8):
            mark = " **(chosen)**" if (p["mask_threshold"] == ch.get("mask_threshold") and p["dilate"] == ch.get("dilate")
                                      and not p["flip_tta"] and p["scale"] == 1) else ""
            print(f"| {p['flip_tta']} | {'128x64' if p['scale'] == 1 else '64x32'} | {p['mask_threshold']} | {p['dilate']} "
                  f"| {pct(p['face_px_covered'])}{mark} | {pct(p['overblur'])} | {pct(p['area'])} |")
    print("\nchosen:", json.dumps(ch))
    if "centerface" in r:
        print("\n### CenterFace default and union (test)\n")
        print("| CenterFace thr (x1.3 boxes) | + ours at thr | recall | face-less boxed | detection rate |")
        print("|---|---|---|---|---|")
        for c in r["centerface"]["test"]:
            u = c.get("union_with_threshold")
            print(f"| {c['centerface_threshold']} | {'-' if u is None else f'{u:.4f}'} | {pct(c['recall'])} "
                  f"| {pct(c['faceless_boxed'])} | {pct(c['detection_rate'])} |")
    for sj in speed_jsons:
        with open(sj) as fh:
            s = json.load(fh)
        print(f"\n### Speed, {s['threads']} thread(s), {s['crops']} crops, batch {s['batch']}\n")
        for k, v in s.items():
            if isinstance(v, float):
                print(f"- {k}: {v:.1f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
