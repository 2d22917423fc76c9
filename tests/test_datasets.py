"""Dataset loaders: tiny hand-built trees with known answers, plus real Market-1501 counts."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import require_shared

from reidlab.cli import main as cli_main
from reidlab.datasets import Sample, build_dataset, relabel
from reidlab.datasets.viper import DEFAULT_SEED, split_pids
from reidlab.errors import DatasetError


def img(path: Path, seed: int = 0, size=(16, 8)) -> Path:
    """Write a small real image (format from the extension) with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), arr), path
    return path


def tree(base: Path, files: dict[str, list[str]]) -> Path:
    for folder, names in files.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        for i, n in enumerate(names):
            img(base / folder / n, seed=i)
    return base


def triples(samples) -> list[tuple[str, int, int]]:
    return sorted((Path(s.path).name, s.pid, s.camid) for s in samples)


# --------------------------------------------------------------------------- Market-1501
MARKET = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000301_01.jpg",
        "0007_c3s1_000551_00.jpg",
        "0007_c6s2_001001_02.jpg",
    ],
    "query": ["0002_c1s1_001051_00.jpg", "0007_c2s1_000151_00.jpg"],
    "bounding_box_test": [
        "0002_c4s1_000101_01.jpg",
        "0007_c5s1_000201_01.jpg",
        "0000_c3s1_000301_02.jpg",
        "-1_c1s1_000401_03.jpg",
        "-1_c2s1_000451_04.jpg",
    ],
}


@pytest.fixture
def market(tmp_path) -> Path:
    root = tree(tmp_path / "m", MARKET)
    for folder in MARKET:
        (root / folder / "Thumbs.db").write_bytes(b"\x00not an image")
    return root


def test_market_counts_junk_distractors_camids(market):
    ds = build_dataset("market1501", market)
    assert triples(ds.train) == [
        ("0002_c1s1_000451_03.jpg", 2, 0),
        ("0002_c2s1_000301_01.jpg", 2, 1),
        ("0007_c3s1_000551_00.jpg", 7, 2),
        ("0007_c6s2_001001_02.jpg", 7, 5),
    ]
    assert triples(ds.query) == [
        ("0002_c1s1_001051_00.jpg", 2, 0),
        ("0007_c2s1_000151_00.jpg", 7, 1),
    ]
    # junk (-1) dropped, distractor (0) kept; raw pids everywhere
    assert triples(ds.gallery) == [
        ("0000_c3s1_000301_02.jpg", 0, 2),
        ("0002_c4s1_000101_01.jpg", 2, 3),
        ("0007_c5s1_000201_01.jpg", 7, 4),
    ]
    assert ds.info["junk_dropped"] == {"train": 0, "query": 0, "gallery": 2}
    assert ds.info["distractors"] == 1
    assert ds.info["queries_without_match"] == 0
    assert all(Path(s.path).is_absolute() for s in ds.train + ds.query + ds.gallery)
    assert not any(Path(s.path).name == "Thumbs.db" for s in ds.train + ds.query + ds.gallery)


@pytest.mark.parametrize(
    "inner", ["Market-1501-v15.09.15", "market1501", "market1501/Market-1501-v15.09.15"]
)
def test_market_nested_layouts(tmp_path, inner):
    tree(tmp_path / inner, MARKET)
    ds = build_dataset("market", tmp_path)
    assert len(ds.train) == 4 and len(ds.query) == 2 and len(ds.gallery) == 3
    assert ds.root == (tmp_path / inner).resolve()
    # the inner folder itself is also a valid root
    assert len(build_dataset("market1501", tmp_path / inner).gallery) == 3


def test_market_missing_split_folder_lists_what_was_found(tmp_path):
    tree(tmp_path, {k: v for k, v in MARKET.items() if k != "bounding_box_test"})
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DatasetError) as e:
        build_dataset("market1501", tmp_path)
    msg = str(e.value)
    assert "bounding_box_test" in msg and "'query/'" in msg and "'readme.txt'" in msg


def test_missing_root_and_file_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset("market1501", tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        build_dataset("market1501", tmp_path / "f")


def test_market_unparseable_names_strict_and_skip(market, caplog):
    for n in ["IMG_0001.jpg", "0003_c7s1_000001_00.jpg", "abc_c1.jpg"]:  # c7: Market has c1..c6
        img(market / "bounding_box_train" / n)
    with pytest.raises(DatasetError) as e:
        build_dataset("market1501", market)
    msg = str(e.value)
    assert "3 file name(s)" in msg and "'IMG_0001.jpg'" in msg and "0003_c7s1_000001_00.jpg" in msg
    assert "bounding_box_train" in msg and "strict=False" in msg
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("market1501", market, strict=False)
    assert len(ds.train) == 4 and ds.info["skipped_unparseable"]["train"] == 3
    assert "IMG_0001.jpg" in caplog.text


def test_market_empty_split(market):
    for p in (market / "query").iterdir():
        if p.suffix == ".jpg":
            p.unlink()
    with pytest.raises(DatasetError, match="query split is empty"):
        build_dataset("market1501", market)


def test_verify_images_reports_every_bad_file(market):
    (market / "query" / "0002_c3s1_000001_00.jpg").write_bytes(b"")  # empty
    (market / "bounding_box_test" / "0007_c1s1_000001_00.jpg").write_bytes(b"\xff\xd8 garbage")
    ds = build_dataset("market1501", market)  # default: no decoding, loads fine
    assert len(ds.query) == 3
    with pytest.raises(DatasetError) as e:
        build_dataset("market1501", market, verify_images=True)
    msg = str(e.value)
    assert "2 of 11 image file(s)" in msg  # 4 train + 3 query + 4 gallery (junk is not read)
    assert "0002_c3s1_000001_00.jpg" in msg and "0007_c1s1_000001_00.jpg" in msg


def test_query_without_gallery_match_warns(market, caplog):
    img(market / "query" / "0009_c1s1_000001_00.jpg")  # pid 9 absent from the gallery
    img(market / "query" / "0002_c4s1_000009_00.jpg")  # pid 2 only in the gallery's camera 4
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("market1501", market)
    assert ds.info["queries_without_match"] == 2
    assert "2 of 4 queries" in caplog.text


def test_unknown_option_is_a_dataset_error(market):
    with pytest.raises(DatasetError, match="unknown option.*variant"):
        build_dataset("market1501", market, variant="labeled")
    with pytest.raises(DatasetError, match="unknown dataset"):
        build_dataset("nope", market)


def test_relabel():
    s = [Sample("a", 7, 0), Sample("b", 2, 1), Sample("c", 7, 1), Sample("d", 40, 0)]
    out, mapping = relabel(s)
    assert mapping == {2: 0, 7: 1, 40: 2}
    assert [x.pid for x in out] == [1, 0, 1, 2]
    assert [(x.path, x.camid) for x in out] == [(x.path, x.camid) for x in s]


# --------------------------------------------------------------------------- DukeMTMC-reID
def test_duke_eight_cameras(tmp_path):
    tree(
        tmp_path / "DukeMTMC-reID",
        {
            "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c8_f0000001.jpg"],
            "query": ["0005_c1_f0000100.jpg"],
            "bounding_box_test": ["0005_c7_f0000200.jpg", "0011_c3_f0000300.jpg"],
        },
    )
    ds = build_dataset("dukemtmc", tmp_path)
    assert triples(ds.train) == [("0001_c2_f0046182.jpg", 1, 1), ("0001_c8_f0000001.jpg", 1, 7)]
    assert triples(ds.gallery) == [("0005_c7_f0000200.jpg", 5, 6), ("0011_c3_f0000300.jpg", 11, 2)]
    img(tmp_path / "DukeMTMC-reID" / "query" / "0005_c9_f0000001.jpg")
    with pytest.raises(DatasetError, match="0005_c9_f0000001.jpg"):
        build_dataset("duke", tmp_path)


# --------------------------------------------------------------------------- CUHK03
def write_cuhk03(root: Path, variant: str, names, labels, train, query, gallery) -> None:
    from scipy.io import savemat

    filelist = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        filelist[i, 0] = n
    savemat(
        root / f"cuhk03_new_protocol_config_{variant}.mat",
        {
            "filelist": filelist,
            "labels": np.array(labels, dtype=np.float64)[:, None],
            "train_idx": np.array(train)[:, None],
            "query_idx": np.array(query)[:, None],
            "gallery_idx": np.array(gallery)[:, None],
        },
    )
    for n in names:
        img(root / f"images_{variant}" / n, size=(20, 10))


CUHK_NAMES = [
    "1_001_1_01.png",
    "1_001_2_06.png",
    "2_004_1_02.png",
    "2_004_2_07.png",
    "3_010_1_01.png",
    "3_010_2_08.png",
    "3_010_2_09.png",
]
CUHK_LABELS = [1, 1, 50, 50, 1300, 1300, 1300]


@pytest.fixture
def cuhk(tmp_path) -> Path:
    root = tmp_path / "cuhk03"
    root.mkdir()
    # 1-based indices, as in Zhong et al.'s files: train = pids 1, 50; test = pid 1300
    write_cuhk03(root, "labeled", CUHK_NAMES, CUHK_LABELS, [1, 2, 3, 4], [5], [6, 7])
    return root


def test_cuhk03_variant_required(cuhk):
    with pytest.raises(DatasetError, match="variant='labeled' or variant='detected'"):
        build_dataset("cuhk03", cuhk)
    with pytest.raises(DatasetError, match="unknown variant"):
        build_dataset("cuhk03", cuhk, variant="both")


def test_cuhk03_labeled(cuhk):
    ds = build_dataset("cuhk03", cuhk.parent, variant="labeled")  # finds ROOT/cuhk03
    assert triples(ds.train) == [
        ("1_001_1_01.png", 1, 0),
        ("1_001_2_06.png", 1, 1),
        ("2_004_1_02.png", 50, 0),
        ("2_004_2_07.png", 50, 1),
    ]
    assert triples(ds.query) == [("3_010_1_01.png", 1300, 0)]
    assert triples(ds.gallery) == [("3_010_2_08.png", 1300, 1), ("3_010_2_09.png", 1300, 1)]
    assert all(Path(s.path).parent.name == "images_labeled" for s in ds.train)
    assert ds.info["variant"] == "labeled" and ds.info["queries_without_match"] == 0


def test_cuhk03_filelist_as_char_matrix(tmp_path):
    from scipy.io import savemat

    write_cuhk03(tmp_path, "detected", CUHK_NAMES, CUHK_LABELS, [1, 2], [5], [6])
    mat = tmp_path / "cuhk03_new_protocol_config_detected.mat"
    savemat(
        mat,
        {
            "filelist": np.array(CUHK_NAMES),
            "labels": np.array(CUHK_LABELS)[:, None],
            "train_idx": [[1], [2]],
            "query_idx": [[5]],
            "gallery_idx": [[6]],
        },
    )
    ds = build_dataset("cuhk03", tmp_path, variant="detected")
    assert triples(ds.train) == [("1_001_1_01.png", 1, 0), ("1_001_2_06.png", 1, 1)]
    assert triples(ds.gallery) == [("3_010_2_08.png", 1300, 1)]


def test_cuhk03_missing_variant_files(cuhk):
    with pytest.raises(DatasetError, match="cuhk03_new_protocol_config_detected.mat"):
        build_dataset("cuhk03", cuhk, variant="detected")


def test_cuhk03_missing_image_and_bad_names(cuhk):
    (cuhk / "images_labeled" / "2_004_2_07.png").unlink()
    with pytest.raises(DatasetError, match="missing.*2_004_2_07.png"):
        build_dataset("cuhk03", cuhk, variant="labeled")
    write_cuhk03(
        cuhk, "detected", ["1_001_1_01.png", "oops.png", "1_001_2_06.png"], [1, 1, 1], [1], [2], [3]
    )
    with pytest.raises(DatasetError, match="'oops.png'"):
        build_dataset("cuhk03", cuhk, variant="detected")


def test_cuhk03_bad_mat(cuhk):
    from scipy.io import savemat

    savemat(cuhk / "cuhk03_new_protocol_config_labeled.mat", {"filelist": np.zeros(3)})
    with pytest.raises(DatasetError, match="lacks field.*labels.*found filelist"):
        build_dataset("cuhk03", cuhk, variant="labeled")
    (cuhk / "cuhk03_new_protocol_config_labeled.mat").write_text("not a mat file")
    with pytest.raises(DatasetError, match="cannot read"):
        build_dataset("cuhk03", cuhk, variant="labeled")


# --------------------------------------------------------------------------- MSMT17
def write_msmt(root: Path, version: str) -> Path:
    main, tr, te = {
        "v1": ("MSMT17_V1", "train", "test"),
        "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
    }[version]
    base = root / main
    lists = {
        "train": (
            tr,
            [
                ("0000/0000_000_01_0303morning_0008_0.jpg", 0),
                ("0000/0000_001_15_0303noon_0010_1.jpg", 0),
            ],
        ),
        "val": (tr, [("0001/0001_000_07_0303morning_0020_0.jpg", 1)]),
        "query": (te, [("0000/0000_000_03_0113morning_0001_0.jpg", 0)]),
        "gallery": (
            te,
            [
                ("0000/0000_004_12_0113noon_0100_0.jpg", 0),
                ("0002/0002_000_10_0113noon_0100_0.jpg", 2),
            ],
        ),
    }
    for split, (folder, rows) in lists.items():
        for rel, _ in rows:
            img(base / folder / rel)
        (base / f"list_{split}.txt").write_text("".join(f"{r} {p}\n" for r, p in rows))
    return base


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt17(tmp_path, version):
    write_msmt(tmp_path, version)
    with pytest.raises(DatasetError, match="version='v1' or version='v2'"):
        build_dataset("msmt17", tmp_path)
    other = "v2" if version == "v1" else "v1"
    with pytest.raises(DatasetError, match=f"MSMT17_{other.upper()}"):
        build_dataset("msmt17", tmp_path, version=other)
    ds = build_dataset("msmt17", tmp_path, version=version)
    assert triples(ds.train) == [
        ("0000_000_01_0303morning_0008_0.jpg", 0, 0),
        ("0000_001_15_0303noon_0010_1.jpg", 0, 14),
        ("0001_000_07_0303morning_0020_0.jpg", 1, 6),
    ]
    assert triples(ds.query) == [("0000_000_03_0113morning_0001_0.jpg", 0, 2)]
    assert triples(ds.gallery) == [
        ("0000_004_12_0113noon_0100_0.jpg", 0, 11),
        ("0002_000_10_0113noon_0100_0.jpg", 2, 9),
    ]
    assert ds.info["faces_masked"] == (version == "v2")
    assert len(build_dataset("msmt17", tmp_path, version=version, include_val=False).train) == 2


def test_msmt17_bad_lists(tmp_path):
    base = write_msmt(tmp_path, "v1")
    (base / "list_query.txt").write_text("0000/0000_000_03_0113morning_0001_0.jpg\n")  # no pid
    with pytest.raises(DatasetError, match="list_query.txt do not parse.*line 1"):
        build_dataset("msmt17", tmp_path, version="v1")
    (base / "list_query.txt").write_text("0000/0000_000_03_0113morning_0009_0.jpg 0\n")
    with pytest.raises(DatasetError, match="missing.*0000_000_03_0113morning_0009_0.jpg"):
        build_dataset("msmt17", tmp_path, version="v1")
    (base / "list_val.txt").unlink()
    with pytest.raises(DatasetError, match="list_val.txt"):
        build_dataset("msmt17", tmp_path, version="v1")


# --------------------------------------------------------------------------- VIPeR
@pytest.fixture(scope="module")
def viper(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viper") / "VIPeR"
    pids = sorted(np.random.default_rng(1).choice(874, 632, replace=False).tolist())
    for cam, angle in (("cam_a", 0), ("cam_b", 90)):
        (root / cam).mkdir(parents=True)
        for p in pids:
            img(root / cam / f"{p:03d}_{angle}.bmp", seed=p, size=(8, 4))
    (root / "cam_a" / "Thumbs.db").write_bytes(b"x")
    return root.parent


def test_viper_splits_reproducible_disjoint(viper):
    a = build_dataset("viper", viper, split_index=3)
    b = build_dataset("viper", viper, split_index=3)
    assert a.train == b.train and a.query == b.query and a.gallery == b.gallery
    train_ids, test_ids = {s.pid for s in a.train}, {s.pid for s in a.query}
    assert len(train_ids) == 316 and len(test_ids) == 316 and not train_ids & test_ids
    assert len(a.train) == 632 and {s.camid for s in a.train} == {0, 1}
    assert {s.camid for s in a.query} == {0} and {s.camid for s in a.gallery} == {1}
    assert all(Path(s.path).parent.name == "cam_a" for s in a.query)
    assert [s.pid for s in a.query] == [s.pid for s in a.gallery]
    assert a.info["seed"] == DEFAULT_SEED and a.info["split_index"] == 3
    # the split is the seeded permutation, recomputed independently here
    pids = sorted(train_ids | test_ids)
    rng = np.random.default_rng(DEFAULT_SEED)
    order = [rng.permutation(632) for _ in range(4)][3]
    assert train_ids == {pids[i] for i in order[:316]}


def test_viper_split_options(viper):
    s0 = build_dataset("viper", viper)
    s1 = build_dataset("viper", viper, split_index=1)
    assert {s.pid for s in s0.query} != {s.pid for s in s1.query}
    sw = build_dataset("viper", viper, swap=True)
    assert sw.train == s0.train and sw.query == s0.gallery and sw.gallery == s0.query
    other = build_dataset("viper", viper, seed=1)
    assert {s.pid for s in other.query} != {s.pid for s in s0.query}
    with pytest.raises(DatasetError, match="split_index 10"):
        build_dataset("viper", viper, split_index=10)


def test_viper_unpaired_pid(tmp_path):
    tree(tmp_path / "VIPeR", {"cam_a": ["000_45.bmp", "001_0.bmp"], "cam_b": ["000_90.bmp"]})
    with pytest.raises(DatasetError, match="only one of cam_a/cam_b.*'1'"):
        build_dataset("viper", tmp_path)


def test_split_pids_odd():
    train, test = split_pids(list(range(7)), 0, seed=5)
    assert len(train) == 3 and len(test) == 4 and sorted(train + test) == list(range(7))


# --------------------------------------------------------------------------- custom
def test_custom_folders(tmp_path):
    tree(
        tmp_path,
        {
            "train": ["0001_0_a.jpg", "0001_1_b.png", "0003_2.jpg"],
            "query": ["0005_0_q.jpg", "-1_0_junk.jpg"],
            "gallery": ["0005_1_g.bmp", "0008_0_g.jpg"],
        },
    )
    (tmp_path / "gallery" / "Thumbs.db").write_bytes(b"x")
    ds = build_dataset("custom", tmp_path)
    assert triples(ds.train) == [
        ("0001_0_a.jpg", 1, 0),
        ("0001_1_b.png", 1, 1),
        ("0003_2.jpg", 3, 2),
    ]
    assert triples(ds.query) == [("0005_0_q.jpg", 5, 0)]
    assert triples(ds.gallery) == [("0005_1_g.bmp", 5, 1), ("0008_0_g.jpg", 8, 0)]
    assert ds.info["junk_dropped"]["query"] == 1
    # train is optional (evaluation-only data)
    for p in (tmp_path / "train").iterdir():
        p.unlink()
    (tmp_path / "train").rmdir()
    assert build_dataset("custom", tmp_path).train == []


def test_custom_folders_errors(tmp_path):
    tree(tmp_path, {"query": ["0005_0_q.jpg"], "probe": ["x.jpg"]})
    with pytest.raises(DatasetError, match="query/ and gallery/.*'probe/'"):
        build_dataset("custom", tmp_path)
    tree(tmp_path, {"gallery": ["person5_cam1.jpg"]})
    with pytest.raises(DatasetError, match="'person5_cam1.jpg'"):
        build_dataset("custom", tmp_path)


def test_custom_csv_single_and_per_split(tmp_path):
    for n in ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]:
        img(tmp_path / "imgs" / n)
    (tmp_path / "all.csv").write_text(
        "path,pid,camid,split\nimgs/a.jpg,4,0,train\nimgs/b.jpg,4,1,train\n"
        "imgs/c.jpg,9,0,query\nimgs/d.jpg,9,2,gallery\n"
    )
    ds = build_dataset("custom", tmp_path / "all.csv")
    assert triples(ds.train) == [("a.jpg", 4, 0), ("b.jpg", 4, 1)]
    assert triples(ds.query) == [("c.jpg", 9, 0)] and triples(ds.gallery) == [("d.jpg", 9, 2)]
    assert ds.query[0].path == str((tmp_path / "imgs" / "c.jpg").resolve())

    (tmp_path / "query.csv").write_text("path,pid,camid\nimgs/c.jpg,9,0\n")
    (tmp_path / "gallery.csv").write_text(f"path,pid,camid\n{tmp_path / 'imgs' / 'd.jpg'},9,1\n")
    ds = build_dataset("custom", tmp_path)
    assert ds.train == [] and triples(ds.gallery) == [("d.jpg", 9, 1)]


def test_custom_csv_errors(tmp_path):
    img(tmp_path / "a.jpg")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,id,cam\na.jpg,1,0\n")
    with pytest.raises(DatasetError, match="lacks column.*path.*found file,id,cam"):
        build_dataset("custom", bad)
    bad.write_text("path,pid,camid,split\na.jpg,x,0,query\na.jpg,1,0,probe\n")
    with pytest.raises(DatasetError, match="2 row\\(s\\).*line 2.*line 3"):
        build_dataset("custom", bad)
    bad.write_text("path,pid,camid,split\na.jpg,1,0,query\nmissing.jpg,1,1,gallery\n")
    with pytest.raises(DatasetError, match="missing.*missing.jpg"):
        build_dataset("custom", bad)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a .csv"):
        build_dataset("custom", tmp_path / "notes.txt")


# --------------------------------------------------------------------------- CLI
def test_cli_lists_and_loads(market, capsys):
    assert cli_main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in ["market1501", "cuhk03", "msmt17", "viper", "custom"])
    assert cli_main(["datasets", "market1501", str(market)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "junk_dropped" in out and "warnings: 0" in out


def test_cli_errors_are_messages_not_tracebacks(cuhk, market, capsys):
    assert cli_main(["datasets", "cuhk03", str(cuhk)]) == 2
    assert "--variant" in capsys.readouterr().err
    assert cli_main(["datasets", "cuhk03", str(cuhk), "--variant", "labeled"]) == 0
    (market / "query" / "0002_c3s1_000001_00.jpg").write_bytes(b"")
    assert cli_main(["datasets", "market1501", str(market), "--verify-images"]) == 2
    assert "0002_c3s1_000001_00.jpg" in capsys.readouterr().err


def test_cli_msmt17_version_and_viper_split(tmp_path, viper, capsys):
    write_msmt(tmp_path, "v2")
    assert cli_main(["datasets", "msmt17", str(tmp_path)]) == 2
    assert cli_main(["datasets", "msmt17", str(tmp_path), "--version", "v2"]) == 0
    assert "faces_masked: True" in capsys.readouterr().out
    assert cli_main(["datasets", "viper", str(viper), "--split-index", "9", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "split_index: 9" in out and "seed: 3" in out and "test_pids: [316 values]" in out


# --------------------------------------------------------------------------- real data
@pytest.mark.shared
def test_real_market1501_counts():
    root = require_shared("market1501")
    ds = build_dataset("market1501", root)
    st = ds.stats()
    assert (st["train"]["images"], st["train"]["ids"]) == (12936, 751)
    assert (st["query"]["images"], st["query"]["ids"]) == (3368, 750)
    assert (st["gallery"]["images"], st["gallery"]["ids"]) == (15913, 751)  # 750 + distractor id 0
    assert ds.info["junk_dropped"]["gallery"] == 3819 and 15913 + 3819 == 19732
    assert ds.info["distractors"] == 2798
    assert ds.num_cameras == 6 and {s.camid for s in ds.gallery} == set(range(6))
    assert ds.info["queries_without_match"] == 0
    # the training labels a classifier needs: 751 contiguous classes
    _, mapping = relabel(ds.train)
    assert sorted(mapping.values()) == list(range(751))
