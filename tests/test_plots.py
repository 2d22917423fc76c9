"""Figures show what the metric ranks: green frames exactly for same-id matches."""

import matplotlib

matplotlib.use("Agg")

import numpy as np

from reidlab.plots import crop_grid, delta_plot, ranked_results


def test_ranked_results_frames_follow_brute_force_ranking():
    rng = np.random.default_rng(0)
    q_pids, g_pids = np.array([1, 2]), np.array([1, 2, 1, 3, 2, 1, 4])
    q_cams, g_cams = np.array([0, 0]), np.array([0, 1, 1, 1, 2, 2, 0])
    dist = rng.uniform(size=(2, 7))
    dist[0, 0] = 0.0  # same id and camera as query 0: must be excluded
    imgs = [np.zeros((8, 4, 3), np.uint8)] * 7
    fig = ranked_results(imgs[:2], imgs, dist, q_pids, g_pids, q_cams, g_cams, topk=4)
    for r in range(2):
        ranked = [
            g
            for g in np.argsort(dist[r], kind="stable")
            if not (g_pids[g] == q_pids[r] and g_cams[g] == q_cams[r])
        ][:4]
        expect = ["#1a9850" if g_pids[g] == q_pids[r] else "#d73027" for g in ranked]
        axes = fig.axes[r * 5 + 1 : r * 5 + 5]
        got = [matplotlib.colors.to_hex(ax.spines["top"].get_edgecolor()) for ax in axes]
        assert got == expect


def test_crop_grid_draws_one_rectangle_per_box():
    imgs = [np.zeros((16, 8, 3), np.uint8)] * 3
    fig = crop_grid(
        imgs,
        [
            np.array([[1, 1, 4, 4]]),
            np.zeros((0, 4)),
            np.array([[0, 0, 2, 2, 0.9], [3, 3, 5, 5, 0.5]]),
        ],
    )
    assert [len(ax.patches) for ax in fig.axes[:3]] == [1, 0, 2]


def test_delta_plot_error_bars_match_ci():
    import pandas as pd

    df = pd.DataFrame(
        {
            "condition": ["blur", "zero"],
            "delta": [-1.0, -2.0],
            "ci_low": [-1.5, -3.0],
            "ci_high": [-0.5, -1.0],
        }
    )
    fig = delta_plot(df)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [-1.0, -2.0]
    # the whiskers: one vertical segment per bar, from ci_low to ci_high, at the bar's centre
    (whisker_lines,) = ax.collections  # the error bars' vertical segments
    whiskers = whisker_lines.get_segments()
    centres = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert [(s[0][0], s[0][1], s[1][0], s[1][1]) for s in whiskers] == [
        (centres[0], -1.5, centres[0], -0.5),
        (centres[1], -3.0, centres[1], -1.0),
    ]


def test_explorer_data_moves_boxes_with_resized_crops(tmp_path, monkeypatch):
    """Crops of another size are resized to the first one's, and their boxes scale with them."""
    import cv2

    from reidlab import faces
    from reidlab.datasets.base import ReIDDataset, Sample
    from reidlab.widgets import load_explorer_data

    paths = []
    for i, (h, w) in enumerate([(128, 64), (256, 128)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((h, w, 3), 100, np.uint8))
        paths.append(str(tmp_path / f"{i}.png"))
    ds = ReIDDataset("t", tmp_path, [], [Sample(p, 1, 0) for p in paths], [])

    class Fixed:  # one box at a fixed relative position in each image
        def detect_batch(self, arrays, paths=None):
            return [
                np.array([[a.shape[1] / 4, 0, a.shape[1] / 2, a.shape[0] / 8, 0.9]], np.float32)
                for a in arrays
            ]

    monkeypatch.setattr(faces, "build_detector", lambda name, **kw: Fixed())
    data = load_explorer_data(ds, n=2, detector="fixed")
    assert tuple(data.images.shape) == (2, 3, 128, 64)
    for d in data.detections:
        np.testing.assert_allclose(d[0, :4], [16, 0, 32, 16])


def test_condition_order_original_methods_then_retrained():
    from reidlab.plots import condition_order

    got = condition_order(
        ["zero", "blur (retrained)", "blur (query only)", "original", "blur", "zero (query only)"]
    )
    assert got == [
        "original",
        "zero",
        "zero (query only)",
        "blur",
        "blur (query only)",
        "blur (retrained)",
    ]


def test_delta_plot_title_units_and_order():
    import pandas as pd

    df = pd.DataFrame(
        {
            "condition": ["blur (retrained)", "zero", "blur", "blur (query only)"],
            "delta": [-0.5, -2.0, -1.0, -0.7],
            "ci_low": [-1.0, -3.0, -1.5, -1.0],
            "ci_high": [0.0, -1.0, -0.5, -0.4],
        }
    )
    ax = delta_plot(df).axes[0]
    assert "95% CI" in ax.get_title() and ax.get_title().startswith("Cost of face anonymization")
    assert "(points)" in ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["zero", "blur", "blur (query only)", "blur (retrained)"]
    # each bar sits over its own condition's tick, whatever the input order
    by_x = {round(p.get_x() + p.get_width() / 2): p.get_height() for p in ax.patches}
    assert [by_x[i] for i in range(4)] == [-2.0, -1.0, -0.7, -0.5]


def test_ranked_rows_marks_and_legend():
    from reidlab.plots import ANONYMIZED, ranked_rows

    img = np.zeros((16, 8, 3), np.uint8)
    rows = [
        {"label": "original", "query_image": img, "gallery": [img] * 3, "match": [1, 0, 0]},
        {
            "label": "blur (query+gallery)",
            "query_image": img,
            "query_marked": True,
            "gallery": [img] * 3,
            "match": [0, 1, 0],
            "marked": [True, False, True],
        },
    ]
    fig = ranked_rows(rows, topk=3, title="one query")
    assert fig._suptitle.get_text() == "one query"
    anon = [
        sum(matplotlib.colors.to_hex(p.get_facecolor()) == ANONYMIZED for p in ax.patches)
        for ax in fig.axes
    ]
    assert anon == [0, 0, 0, 0, 1, 1, 0, 1]  # row 2: the query and gallery items 1 and 3
    assert [a.get_ylabel() for a in fig.axes[::4]] == ["original", "blur (query+gallery)"]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "same identity (true match)",
        "other identity",
        "face anonymized",
    ]
    assert [fig.axes[c].get_title() for c in (1, 2, 3)] == ["rank 1", "rank 2", "rank 3"]


def test_crop_grid_title_row_labels_and_box_legend():
    imgs = [np.zeros((16, 8, 3), np.uint8)] * 4
    fig = crop_grid(
        imgs,
        ncols=2,
        title="crops",
        row_labels=["query", "gallery"],
        box_label="face box (ground truth)",
    )
    assert fig._suptitle.get_text() == "crops"
    assert [fig.axes[0].get_ylabel(), fig.axes[2].get_ylabel()] == ["query", "gallery"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["face box (ground truth)"]


def test_fmt_value_three_significant_digits():
    from reidlab.plots import fmt_value

    assert [fmt_value(v) for v in (1.2000000000000002, 0.6500000000000001, 4, "box")] == [
        "1.2",
        "0.65",
        "4",
        "box",
    ]
