"""fastrnn.coco on files written in the real cs231n layout."""

import http.server
import json
import threading

import h5py
import numpy as np
import pytest

from fastrnn import coco

VOCAB = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat"]


@pytest.fixture
def coco_dir(tmp_path):
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "coco2014_captions.h5", "w") as f:
        f["train_captions"] = rng.integers(0, len(VOCAB), size=(20, 17)).astype(np.int32)
        f["train_image_idxs"] = rng.integers(0, 8, size=20).astype(np.int32)
        f["val_captions"] = rng.integers(0, len(VOCAB), size=(6, 17)).astype(np.int32)
        f["val_image_idxs"] = rng.integers(0, 3, size=6).astype(np.int32)
    for split, n in (("train", 8), ("val", 3)):
        with h5py.File(tmp_path / f"{split}2014_vgg16_fc7_pca.h5", "w") as f:
            f["features"] = rng.standard_normal((n, 512)).astype(np.float32)
        with h5py.File(tmp_path / f"{split}2014_vgg16_fc7.h5", "w") as f:
            f["features"] = rng.standard_normal((n, 4096)).astype(np.float32)
        (tmp_path / f"{split}2014_urls.txt").write_text("".join(f"http://img/{split}/{i}.jpg\n" for i in range(n)))
    (tmp_path / "coco2014_vocab.json").write_text(
        json.dumps({"idx_to_word": VOCAB, "word_to_idx": {w: i for i, w in enumerate(VOCAB)}}))
    return tmp_path


@pytest.mark.parametrize("pca,dim", [(True, 512), (False, 4096)])
def test_load(coco_dir, pca, dim):
    data = coco.load_coco_data(coco_dir, pca_features=pca)
    assert data["train_captions"].shape == (20, 17) and data["val_captions"].shape == (6, 17)
    assert data["train_image_idxs"].shape == (20,) and data["val_image_idxs"].shape == (6,)
    assert data["train_features"].shape == (8, dim) and data["val_features"].shape == (3, dim)
    assert data["idx_to_word"] == VOCAB and data["word_to_idx"]["cat"] == 5
    assert data["train_urls"][3] == "http://img/train/3.jpg" and data["val_urls"].shape == (3,)


def test_max_train(coco_dir):
    np.random.seed(0)
    full = coco.load_coco_data(coco_dir)
    data = coco.load_coco_data(coco_dir, max_train=5)
    assert data["train_captions"].shape == (5, 17) and data["train_image_idxs"].shape == (5,)
    # Each kept caption still points at its own image.
    for cap, idx in zip(data["train_captions"], data["train_image_idxs"]):
        rows = np.flatnonzero((full["train_captions"] == cap).all(axis=1))
        assert idx in full["train_image_idxs"][rows]


def test_missing_file_is_named(coco_dir):
    (coco_dir / "val2014_vgg16_fc7_pca.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"'val2014_vgg16_fc7_pca.h5' not found .*get_datasets.sh"):
        coco.load_coco_data(coco_dir)


def test_sample_minibatch(coco_dir):
    data = coco.load_coco_data(coco_dir)
    captions, features, urls = coco.sample_coco_minibatch(data, batch_size=4, split="val")
    assert captions.shape == (4, 17) and features.shape == (4, 512) and urls.shape == (4,)
    with pytest.raises(ValueError, match="split"):
        coco.sample_coco_minibatch(data, split="test")


def test_decode_captions():
    caps = np.array([[1, 4, 5, 2, 0, 4], [1, 0, 4, 0, 5, 0]])
    assert coco.decode_captions(caps, VOCAB) == ["<START> a cat <END>", "<START> a cat"]
    assert coco.decode_captions(caps[0], VOCAB) == "<START> a cat <END>"
    assert coco.decode_captions(caps[0], dict(enumerate(VOCAB))) == "<START> a cat <END>"


def test_image_from_url_reads_without_temp_files(tmp_path, monkeypatch):
    PIL = pytest.importorskip("PIL.Image")
    img = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    path = tmp_path / "img.png"
    PIL.fromarray(img).save(path)
    import tempfile

    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: pytest.fail("no temporary file is needed"))
    np.testing.assert_array_equal(coco.image_from_url(path.as_uri()), img)


def test_image_from_url_url_error(tmp_path, capsys):
    assert coco.image_from_url((tmp_path / "missing.jpg").as_uri()) is None
    assert "URL Error" in capsys.readouterr().out


def test_image_from_url_http_error(capsys):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        assert coco.image_from_url(f"http://127.0.0.1:{server.server_port}/x.jpg", timeout=10) is None
    finally:
        thread.join(10)
        server.server_close()
    assert "HTTP Error:  404" in capsys.readouterr().out
