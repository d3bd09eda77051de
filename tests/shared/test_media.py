"""Media types: Histogram, Table, Image, their files under the run directory, and load_media."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mplogger._shared import _media
from mplogger._shared._media import Histogram, Image, Media, Table, is_media, load_media

SAFE_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------- helpers


def files_under(root: Path) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_all_inside(run_dir: Path, outside: Path) -> None:
    """Every file under ``outside`` (a parent of run_dir) lies inside run_dir, with a safe name."""
    real_run = run_dir.resolve()
    for path in files_under(outside):
        real = path.resolve()
        assert real_run in real.parents, f"{path} was written outside {run_dir}"
        assert SAFE_FILE.match(path.name), path.name
        assert ".part-" not in path.name, f"temporary file left behind: {path}"


def decode_png(payload: bytes):
    """(width, height, channels, pixel bytes) of an 8-bit PNG whose scanlines all use filter 0."""
    assert payload[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(payload):
        (length,) = struct.unpack(">I", payload[pos:pos + 4])
        kind = payload[pos + 4:pos + 8]
        body = payload[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", payload[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kind == b"IEND"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = width * channels
    assert len(raw) == height * (stride + 1)
    rows = []
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        assert line[0] == 0
        rows.append(line[1:])
    return width, height, channels, b"".join(rows)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def no_pil(monkeypatch):
    """Make ``import PIL`` fail, as on a machine without pillow."""
    for name in list(sys.modules):
        if name == "PIL" or name.startswith("PIL."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)


# --------------------------------------------------------------------------- module


def test_import_pulls_in_no_optional_dependency():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('m', {_media.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "h = m.Histogram([1, 2, 3]); t = m.Table(columns=['a']); t.add_data(1)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('numpy', 'PIL', 'pandas')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_all_and_is_media():
    assert set(_media.__all__) >= {"Media", "Histogram", "Table", "Image", "load_media", "is_media"}
    assert is_media(Histogram([1.0]))
    assert is_media(Table(columns=["a"]))
    assert not is_media({"_type": "histogram"})
    assert not is_media(3.0)
    with pytest.raises(NotImplementedError):
        Media().to_json("x", "k", 0)


# --------------------------------------------------------------------------- Histogram


def test_histogram_from_list(run_dir: Path):
    h = Histogram([0, 1, 2, 3], num_bins=3)
    assert h.bins == [0.0, 1.0, 2.0, 3.0]
    assert h.values == [1, 1, 2]  # the last bin includes its right edge
    assert h.histogram == h.values
    ref = h.to_json(str(run_dir), "weights", 5)
    assert ref == {"_type": "histogram", "values": [1, 1, 2], "bins": [0.0, 1.0, 2.0, 3.0]}
    json.dumps(ref, allow_nan=False)
    assert not run_dir.exists()  # inline: no file
    assert load_media(ref, str(run_dir)) == h


def test_histogram_drops_nonfinite_and_handles_degenerate_input():
    h = Histogram([1.0, float("nan"), 2.0, float("inf"), float("-inf"), 3.0], num_bins=2)
    assert sum(h.values) == 3 and h.bins == [1.0, 2.0, 3.0]
    single = Histogram([7, 7, 7], num_bins=4)
    assert single.bins[0] == 6.5 and single.bins[-1] == 7.5 and sum(single.values) == 3
    empty = Histogram([], num_bins=4)
    assert empty.values == [0, 0, 0, 0] and empty.bins[0] == 0.0 and empty.bins[-1] == 1.0
    only_nan = Histogram([float("nan")], num_bins=2)
    assert only_nan.values == [0, 0]
    gen = Histogram((x / 10 for x in range(100)), num_bins=10)
    assert len(gen.values) == 10 and sum(gen.values) == 100
    nested = Histogram([[1, 2], (3, 4)], num_bins=2)
    assert nested.values == [2, 2]


def test_histogram_bin_limit_and_argument_errors():
    Histogram([1, 2], num_bins=512)
    with pytest.raises(ValueError, match="num_bins"):
        Histogram([1, 2], num_bins=513)
    with pytest.raises(ValueError, match="num_bins"):
        Histogram([1, 2], num_bins=0)
    with pytest.raises(TypeError, match="num_bins"):
        Histogram([1, 2], num_bins=2.5)
    with pytest.raises(ValueError, match="np_histogram"):
        Histogram(np_histogram=([1] * 513, list(range(514))))
    with pytest.raises(ValueError, match="np_histogram"):
        Histogram(np_histogram=([1, 2], [0, 1]))
    with pytest.raises(ValueError, match="np_histogram"):
        Histogram([1], np_histogram=([1], [0, 1]))
    with pytest.raises(ValueError, match="sequence"):
        Histogram()
    with pytest.raises(TypeError, match="sequence"):
        Histogram("123")
    with pytest.raises(TypeError, match="sequence"):
        Histogram([1, "x"])
    with pytest.raises(TypeError, match="sequence"):
        Histogram(5)


def test_histogram_from_numpy_array_matches_numpy_and_pure_python():
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    for num_bins in (1, 7, 64, 512):
        data = rng.normal(size=2000) * 3.7 + 1.1
        expected_counts, expected_edges = np.histogram(data, bins=num_bins)
        from_array = Histogram(data, num_bins=num_bins)
        from_list = Histogram(data.tolist(), num_bins=num_bins)
        assert from_array.values == expected_counts.tolist()
        assert from_array.bins == expected_edges.tolist()
        assert from_list == from_array  # the pure-Python path gives the same bins, bin for bin
    grid = np.arange(0, 1.0001, 0.01)  # values on bin edges
    assert Histogram(grid.tolist(), num_bins=10) == Histogram(grid, num_bins=10)
    image_like = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    h = Histogram(image_like, num_bins=16)
    assert sum(h.values) == 192 and all(type(v) is int for v in h.values)
    with_nan = np.array([1.0, np.nan, 2.0, np.inf])
    assert sum(Histogram(with_nan, num_bins=4).values) == 2
    with pytest.raises(TypeError, match="sequence"):
        Histogram(np.array(["a", "b"]))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e300, max_value=1e300)
        | st.integers(-(10**6), 10**6)
        | st.sampled_from([math.nan, math.inf, -math.inf]),
        max_size=40,
    ),
    st.integers(1, 512),
)
def test_histogram_properties(xs, num_bins):
    h = Histogram(xs, num_bins=num_bins)
    finite = [float(x) for x in xs if math.isfinite(x)]
    assert len(h.values) == num_bins and len(h.bins) == num_bins + 1
    assert sum(h.values) == len(finite)
    assert all(a < b for a, b in zip(h.bins, h.bins[1:]))
    if finite:
        assert h.bins[0] <= min(finite) and max(finite) <= h.bins[-1]
    if sys.modules.get("numpy") is not None:
        import numpy as np

        assert Histogram(np.array(xs, dtype=float), num_bins=num_bins) == h


def test_histogram_from_np_histogram(run_dir: Path):
    np = pytest.importorskip("numpy")
    counts, edges = np.histogram(np.arange(100), bins=5)
    h = Histogram(np_histogram=(counts, edges))
    assert h.values == counts.tolist() and h.bins == edges.tolist()
    ref = h.to_json(str(run_dir), "h", 0)
    assert load_media(ref, str(run_dir)) == h
    floats = Histogram(np_histogram=([0.5, 0.25], [0, 1, 2]))
    assert floats.values == [0.5, 0.25] and floats.bins == [0.0, 1.0, 2.0]


# --------------------------------------------------------------------------- Table


def test_table_add_data_and_default_columns():
    t = Table()
    t.add_data(1, "a", True)
    t.add_data(2.5, None, False)
    assert t.columns == ["col0", "col1", "col2"]
    assert t.data == [[1, "a", True], [2.5, None, False]]
    assert (t.nrows, t.ncols, len(t)) == (2, 3, 2)
    from_rows = Table(rows=[[1, 2], [3, 4]])
    assert from_rows.columns == ["col0", "col1"] and from_rows.data == [[1, 2], [3, 4]]
    named = Table(columns=["x", "y"], data=[(1, 2)])
    assert named.data == [[1, 2]]


def test_table_length_error_names_expected_and_got():
    t = Table(columns=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected 3 .*a, b, c.*got 2"):
        t.add_data(1, 2)
    with pytest.raises(ValueError, match="expected 2.*got 1"):
        Table(columns=["a", "b"], data=[[1, 2], [3]])
    with pytest.raises(ValueError, match="data or rows"):
        Table(data=[[1]], rows=[[1]])
    with pytest.raises(ValueError, match="duplicate"):
        Table(columns=["a", "a"])
    with pytest.raises(TypeError, match="row"):
        Table(data=[1, 2])


def test_table_cells_of_other_types_are_reprs():
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    t = Table(columns=["a", "b"])
    t.add_data(Thing(), [1, 2])
    assert t.data == [["<thing>", "[1, 2]"]]


def test_table_round_trip_with_nonfinite(run_dir: Path):
    t = Table(columns=["name", "score", "ok", "note"])
    t.add_data("a", 1.5, True, None)
    t.add_data("b", float("nan"), False, "x")
    t.add_data("c", float("inf"), True, "y")
    t.add_data("d", float("-inf"), False, "")
    ref = t.to_json(str(run_dir), "eval/table", 3)
    assert ref["_type"] == "table-file"
    assert (ref["nrows"], ref["ncols"]) == (4, 4)
    assert ref["path"].startswith("media/table/") and ref["path"].endswith(".table.json")
    assert not os.path.isabs(ref["path"])
    json.dumps(ref, allow_nan=False)

    path = run_dir / ref["path"]

    def reject(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    document = json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)
    assert document["columns"] == ["name", "score", "ok", "note"] and document["version"] == 2
    assert [row[1] for row in document["data"]] == [
        1.5, {"_type": "float", "value": "NaN"}, {"_type": "float", "value": "Infinity"},
        {"_type": "float", "value": "-Infinity"}]

    back = load_media(ref, str(run_dir))
    assert isinstance(back, Table)
    assert back == t
    assert back.columns == t.columns
    assert math.isnan(back.data[1][1]) and back.data[2][1] == math.inf and back.data[3][1] == -math.inf
    assert back.data[0] == ["a", 1.5, True, None]

    again = t.to_json(str(run_dir), "eval/table", 3)  # same content, same file: idempotent
    assert again == ref
    assert len(files_under(run_dir)) == 1


def test_table_string_cells_that_look_like_nonfinite_stay_strings(run_dir: Path):
    t = Table(columns=["text", "score"], data=[["NaN", float("nan")], ["Infinity", 1.0], ["-Infinity", -math.inf]])
    back = load_media(t.to_json(str(run_dir), "t", 0), str(run_dir))
    assert [row[0] for row in back.data] == ["NaN", "Infinity", "-Infinity"]
    assert all(type(row[0]) is str for row in back.data)
    assert math.isnan(back.data[0][1]) and back.data[1][1] == 1.0 and back.data[2][1] == -math.inf


def test_table_dict_cell_shaped_like_the_float_marker_stays_a_string(run_dir: Path):
    t = Table(columns=["cell"], data=[[{"_type": "float", "value": "NaN"}]])
    back = load_media(t.to_json(str(run_dir), "t", 0), str(run_dir))
    assert back.data == [["{'_type': 'float', 'value': 'NaN'}"]]


def test_table_file_written_before_version_2_still_reads_its_nonfinite_strings(run_dir: Path):
    """Before version 2 a non-finite float was written as the string "NaN": old files read as meant."""
    path = run_dir / "media" / "table" / "old.table.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"columns": ["s"], "data": [["NaN"], ["Infinity"], ["x"]]}))
    back = load_media({"_type": "table-file", "path": "media/table/old.table.json"}, str(run_dir))
    assert math.isnan(back.data[0][0]) and back.data[1][0] == math.inf and back.data[2][0] == "x"


@pytest.mark.parametrize("cell", [2**63, -(2**63) - 1, 10**5000], ids=["2**63", "-2**63-1", "10**5000"])
def test_table_int_cell_outside_64_bits_is_refused_naming_the_column(cell):
    t = Table(columns=["ok", "count"])
    with pytest.raises(ValueError, match=r"Table: column 'count': int .* outside the 64-bit range"):
        t.add_data(1, cell)
    t.add_data(1, 2**63 - 1)
    assert t.data == [[1, 2**63 - 1]]


def test_histogram_np_histogram_count_outside_64_bits_is_refused():
    with pytest.raises(ValueError, match="np_histogram values: int 9223372036854775808 is outside"):
        Histogram(np_histogram=([2**63], [0.0, 1.0]))


def test_table_from_numpy_and_numpy_cells():
    np = pytest.importorskip("numpy")
    t = Table(columns=["a", "b"], data=np.arange(6).reshape(3, 2))
    assert t.data == [[0, 1], [2, 3], [4, 5]]
    t.add_data(np.float32(0.5), np.bool_(True))
    assert t.data[-1] == [0.5, True] and type(t.data[-1][1]) is bool


def test_table_from_dataframe(run_dir: Path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": [1, 2], "y": [0.5, float("nan")], "z": ["a", None]})
    t = Table(dataframe=df)
    assert t.columns == ["x", "y", "z"]
    assert t.data[0] == [1, 0.5, "a"]
    assert type(t.data[0][0]) is int
    back = load_media(t.to_json(str(run_dir), "df", 0), str(run_dir))
    assert back == t
    frame = back.get_dataframe()
    assert list(frame.columns) == ["x", "y", "z"] and len(frame) == 2
    with pytest.raises(ValueError, match="dataframe"):
        Table(columns=["x"], dataframe=df)


# --------------------------------------------------------------------------- Image


def test_image_from_uint8_array_without_pil(run_dir: Path, no_pil):
    np = pytest.importorskip("numpy")
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    img = Image(pixels, caption="grad")
    ref = img.to_json(str(run_dir), "samples", 7)
    assert ref["_type"] == "image-file" and ref["format"] == "png"
    assert (ref["width"], ref["height"], ref["caption"]) == (5, 4, "grad")
    assert ref["path"].startswith("media/images/") and ref["path"].endswith(".png")
    payload = (run_dir / ref["path"]).read_bytes()
    assert payload.startswith(b"\x89PNG\r\n\x1a\n")
    import hashlib

    assert ref["sha256"] == hashlib.sha256(payload).hexdigest()
    assert decode_png(payload) == (5, 4, 3, pixels.tobytes())
    json.dumps(ref, allow_nan=False)
    loaded = load_media(ref, str(run_dir))
    assert isinstance(loaded, str) and os.path.isabs(loaded)
    assert Path(loaded) == (run_dir / ref["path"]).resolve()


def test_image_from_float_array_without_pil(run_dir: Path, no_pil):
    np = pytest.importorskip("numpy")
    data = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 1.0]], dtype=np.float32)
    ref = Image(data).to_json(str(run_dir), "gray", 0)
    width, height, channels, raw = decode_png((run_dir / ref["path"]).read_bytes())
    assert (width, height, channels) == (3, 2, 1)
    assert list(raw) == [0, 128, 255, 64, 191, 255]
    big = np.array([[0.0, 300.0, 12.4]])  # floats beyond 1: taken as 0..255 values, clipped
    assert list(decode_png(Image(big)._payload)[3]) == [0, 255, 12]


def test_image_array_shapes_and_int_clipping(run_dir: Path):
    np = pytest.importorskip("numpy")
    gray = np.array([[-5, 0, 100, 300]], dtype=np.int64)
    assert decode_png(Image(gray)._payload) == (4, 1, 1, bytes([0, 0, 100, 255]))
    hw1 = np.full((2, 3, 1), 9, dtype=np.uint8)
    assert decode_png(Image(hw1)._payload)[:3] == (3, 2, 1)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 200
    assert decode_png(Image(rgba)._payload) == (2, 2, 4, rgba.tobytes())
    as_rgb = decode_png(Image(np.full((1, 1), 10, np.uint8), mode="RGB")._payload)
    assert as_rgb == (1, 1, 3, bytes([10, 10, 10]))
    for bad in (np.zeros((2, 2, 5), np.uint8), np.zeros((2,), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(ValueError, match="shape"):
            Image(bad)
    with pytest.raises(ValueError, match="mode"):
        Image(np.zeros((1, 1), np.uint8), mode="CMYK")


def test_numpy_png_opens_in_pil_with_right_pixels(run_dir: Path):
    np = pytest.importorskip("numpy")
    PILImage = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    for shape, mode in (((6, 9, 3), "RGB"), ((6, 9, 4), "RGBA"), ((6, 9), "L")):
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        ref = Image(pixels).to_json(str(run_dir), f"pil-{mode}", 1)
        with PILImage.open(run_dir / ref["path"]) as opened:
            assert opened.format == "PNG" and opened.mode == mode and opened.size == (9, 6)
            assert np.array_equal(np.asarray(opened), pixels)
    floats = np.linspace(0, 1, 12).reshape(3, 4)
    ref = Image(floats).to_json(str(run_dir), "floats", 1)
    with PILImage.open(run_dir / ref["path"]) as opened:
        assert opened.size == (4, 3)
        assert np.array_equal(np.asarray(opened), np.rint(floats * 255).astype(np.uint8))


def test_image_from_pil_image(run_dir: Path):
    PILImage = pytest.importorskip("PIL.Image")
    source = PILImage.new("RGB", (7, 3), (10, 20, 30))
    source.putpixel((6, 2), (255, 0, 128))
    ref = Image(source, caption="pil").to_json(str(run_dir), "pil", 2)
    assert (ref["width"], ref["height"], ref["format"]) == (7, 3, "png")
    with PILImage.open(run_dir / ref["path"]) as opened:
        assert opened.size == (7, 3)
        assert opened.convert("RGB").getpixel((6, 2)) == (255, 0, 128)
        assert opened.convert("RGB").getpixel((0, 0)) == (10, 20, 30)
    gray = Image(source, mode="L")
    assert (gray.width, gray.height) == (7, 3)
    cmyk = Image(PILImage.new("CMYK", (2, 2)))  # not a PNG mode: converted
    assert cmyk.width == 2


def test_image_from_png_path_is_copied(run_dir: Path, tmp_path: Path, no_pil):
    source = tmp_path / "in.png"
    source.write_bytes(_media.encode_png(bytes(range(12)), 2, 2, 3))
    img = Image(str(source))
    ref = img.to_json(str(run_dir), "file", 0)
    copy = run_dir / ref["path"]
    assert not copy.is_symlink()
    assert copy.read_bytes() == source.read_bytes()
    assert not os.path.samefile(copy, source)
    source.unlink()
    assert copy.exists()
    assert (ref["width"], ref["height"], ref["format"]) == (2, 2, "png")
    assert Image(Path(copy)).sha256 == ref["sha256"]  # a pathlib.Path works too


def test_image_from_jpeg_path_is_copied(run_dir: Path, tmp_path: Path):
    PILImage = pytest.importorskip("PIL.Image")
    source = tmp_path / "photo.jpg"
    PILImage.new("RGB", (11, 5), (200, 100, 50)).save(source, format="JPEG")
    ref = Image(str(source)).to_json(str(run_dir), "photo", 4)
    assert ref["format"] == "jpeg" and ref["path"].endswith(".jpg")
    assert (ref["width"], ref["height"]) == (11, 5)
    assert (run_dir / ref["path"]).read_bytes() == source.read_bytes()


def test_image_path_errors(tmp_path: Path, no_pil):
    with pytest.raises(FileNotFoundError, match="data_or_path"):
        Image(str(tmp_path / "missing.png"))
    other = tmp_path / "pic.gif"
    other.write_bytes(b"GIF89a" + b"\0" * 20)
    with pytest.raises(ImportError, match="pip install pillow"):
        Image(str(other))
    with pytest.raises(TypeError, match="data_or_path"):
        Image(42)
    with pytest.raises(TypeError, match="caption"):
        Image(str(other), caption=5)


def test_encode_png_needs_no_numpy():
    payload = _media.encode_png(bytes([1, 2, 3, 4]), 2, 2, 1)
    assert decode_png(payload) == (2, 2, 1, bytes([1, 2, 3, 4]))
    with pytest.raises(ValueError):
        _media.encode_png(b"\0" * 3, 2, 2, 1)


# --------------------------------------------------------------------------- file names, load_media


@pytest.mark.parametrize(
    "key",
    ["a/b c:d", "../../escape", "..", ".hidden", "", "x\\y\0z", "ключ/日本", "k" * 500, "C:\\temp\\x", "con"],
)
def test_odd_keys_give_safe_names_inside_run_dir(tmp_path: Path, key: str):
    run_dir = tmp_path / "run"
    refs = [Table(columns=["a"], data=[[1]]).to_json(str(run_dir), key, 3)]
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        refs.append(Image(np.zeros((2, 2), np.uint8)).to_json(str(run_dir), key, 3))
    for ref in refs:
        relative = ref["path"]
        assert not relative.startswith("/") and ".." not in relative.split("/")
        name = relative.rsplit("/", 1)[1]
        assert SAFE_FILE.match(name), name
        assert len(name) < 120
        assert (run_dir / relative).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert_all_inside(run_dir, tmp_path)


def test_file_name_has_key_step_and_hash(run_dir: Path):
    ref = Table(columns=["a"], data=[[1]]).to_json(str(run_dir), "a/b c:d", 12)
    name = ref["path"].rsplit("/", 1)[1]
    assert re.fullmatch(r"a_b_c_d_12_[0-9a-f]{12}\.table\.json", name), name
    other = Table(columns=["a"], data=[[2]]).to_json(str(run_dir), "a/b c:d", 12)
    assert other["path"] != ref["path"]  # different content, different file
    with pytest.raises(TypeError, match="step"):
        Table(columns=["a"]).to_json(str(run_dir), "k", "1")
    with pytest.raises(TypeError, match="key"):
        Table(columns=["a"]).to_json(str(run_dir), 1, 1)


def test_every_written_file_is_inside_run_dir(tmp_path: Path):
    np = pytest.importorskip("numpy")
    run_dir = tmp_path / "deep" / "run"
    Histogram([1, 2, 3]).to_json(str(run_dir), "h", 0)
    for step in range(3):
        Table(columns=["s"], data=[[step]]).to_json(str(run_dir), "t/x", step)
        Image(np.full((2, 2, 3), step, np.uint8)).to_json(str(run_dir), "img", step)
    written = files_under(tmp_path)
    assert len(written) == 6
    assert_all_inside(run_dir, tmp_path)
    assert {p.parent.name for p in written} == {"table", "images"}


def test_load_media_passes_unknown_through_and_guards_paths(run_dir: Path):
    unknown = {"_type": "audio-file", "path": "media/audio/x.wav"}
    assert load_media(unknown, str(run_dir)) is unknown
    assert load_media({"a": 1}, str(run_dir)) == {"a": 1}
    assert load_media(3, str(run_dir)) == 3
    with pytest.raises(ValueError, match="outside"):
        load_media({"_type": "table-file", "path": "../../etc/passwd"}, str(run_dir))
    with pytest.raises(ValueError, match="outside"):
        load_media({"_type": "image-file", "path": "/etc/passwd"}, str(run_dir))


def test_a_table_cell_with_a_lone_surrogate_is_stored_like_a_plain_value(tmp_path):
    """As in log(): any string Python holds is stored (ASCII-escaped JSON), and read back."""
    table = Table(columns=["text\udc80"], data=[["odd \ud800 cell"]])
    reference = table.to_json(str(tmp_path), "t", 0)
    back = load_media(reference, str(tmp_path))
    assert back.columns == ["text\udc80"] and back.data == [["odd \ud800 cell"]]


def test_tensorboard_folder_names_hold_no_terminal_or_bidi_controls():
    from mplogger._readers._engines import _folder_name

    class Named:
        name, id = "a\x9bb\u202ec\x1bd/e", "r1"

    assert _folder_name(Named()) == "a_b_c_d_e-r1"


# --------------------------------------------------------------------------- lists of media (wandb's gallery)


def gray(value: int, caption=None) -> Image:
    np = pytest.importorskip("numpy")
    return Image(np.full((2, 3), value, np.uint8), caption=caption)


def stored_references(root: str, run_id: str) -> list:
    """The rows of a run as stored: media as their JSON references, whatever the reader makes of them."""
    import sqlite3

    with sqlite3.connect(os.path.join(root, "mplogger.db")) as conn:
        rows = conn.execute("SELECT data FROM history WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    return [json.loads(data) for (data,) in rows]


def test_a_list_of_images_is_stored_one_file_per_item_and_reads_back(root):
    import mplogger

    run = mplogger.init(dir=root)
    same_twice = [gray(7), gray(7, caption="again")]  # equal pixels: only the index tells the files apart
    run.log({"samples": same_twice, "loss": 0.5})
    run.log({"samples": [gray(1), gray(2), gray(3)], "loss": 0.25})  # known keys: not the fast path
    run.finish()
    assert all(isinstance(item, Image) for item in same_twice)  # the caller's list is left as it was
    first, second = stored_references(root, run.id)
    assert [len(first["samples"]), len(second["samples"])] == [2, 3]
    references = first["samples"] + second["samples"]
    assert all(ref["_type"] == "image-file" for ref in references)
    assert [ref["caption"] for ref in first["samples"]] == [None, "again"]
    paths = [ref["path"] for ref in references]
    assert len(set(paths)) == 5
    names = [path.rsplit("/", 1)[1] for path in paths]
    assert [name.rsplit("_", 1)[0] for name in names] == ["samples_0_0", "samples_1_0", "samples_0_1",
                                                          "samples_1_1", "samples_2_1"]
    for ref in references:
        payload = (Path(run.dir) / ref["path"]).read_bytes()
        assert payload[:8] == b"\x89PNG\r\n\x1a\n" and len(payload) == ref["size"]
    assert decode_png((Path(run.dir) / second["samples"][2]["path"]).read_bytes())[3] == bytes([3] * 6)
    stored = mplogger.Api(root).run(run.id)
    rows = stored.history()
    assert [row["loss"] for row in rows] == [0.5, 0.25]
    assert rows[0]["samples"] == [os.path.join(stored.dir, p) for p in paths[:2]]  # each item as one image reads
    assert sorted(f for f in stored.files() if f.startswith("media/")) == sorted(paths)
    assert stored.summary["samples"] == second["samples"]  # the last value, as for any key


def test_a_tuple_of_media_in_a_nested_dict_is_stored_as_a_list(root):
    import mplogger

    run = mplogger.init(dir=root)
    table = Table(columns=["a"], data=[[1]])
    run.log({"val": {"media": (gray(5), Histogram([1, 2, 3], num_bins=3), table)}})
    run.finish()
    ((row,),) = [stored_references(root, run.id)]
    image_ref, histogram_ref, table_ref = row["val"]["media"]
    assert [image_ref["_type"], histogram_ref["_type"], table_ref["_type"]] == ["image-file", "histogram", "table-file"]
    assert image_ref["path"].startswith("media/images/val.media_0_0_")
    assert table_ref["path"].startswith("media/table/val.media_2_0_")
    assert load_media(table_ref, run.dir) == table
    assert load_media(histogram_ref, run.dir).values == [1, 1, 1]


@pytest.mark.parametrize("value, error, words", [
    ([], TypeError, ["'bad'", "empty list", "only media"]),
    ((), TypeError, ["'bad'", "empty tuple", "only media"]),
    ("mixed", TypeError, ["'bad'", "only media", "item 1", "builtins.int"]),
    ([1, 2], TypeError, ["'bad'", "cannot store a value of type builtins.list"]),
    ((1.5, "x"), TypeError, ["'bad'", "cannot store a value of type builtins.tuple"]),
    ("nested", TypeError, ["'bad'", "cannot store a value of type builtins.list"]),
], ids=["empty-list", "empty-tuple", "mixed", "numbers", "tuple-of-scalars", "list-of-lists"])
def test_lists_that_are_not_all_media_are_refused_naming_the_key(root, value, error, words):
    import mplogger

    if value == "mixed":
        value = [gray(1), 2]
    elif value == "nested":
        value = [[gray(1)], [gray(2)]]
    run = mplogger.init(dir=root)
    run.log({"good": [gray(9)]})
    with pytest.raises(error) as info:
        run.log({"bad": value, "other": 1})
    for word in words:
        assert word in str(info.value)
    with pytest.raises(error):
        run.summary["bad"] = value
    run.log({"good": [gray(8)]})
    run.finish()
    rows = stored_references(root, run.id)
    assert [list(row) for row in rows] == [["good"], ["good"]]
    assert len([p for p in files_under(Path(run.dir)) if p.suffix == ".png"]) == 2


def test_a_list_of_media_longer_than_the_cap_is_refused_naming_the_key(root):
    import mplogger
    from mplogger._shared._values import MAX_MEDIA_LIST

    run = mplogger.init(dir=root)
    image = gray(4)
    run.log({"ok": [image] * 3})
    with pytest.raises(ValueError) as info:
        run.log({"gallery": [image] * (MAX_MEDIA_LIST + 1)})
    assert "'gallery'" in str(info.value) and f"at most {MAX_MEDIA_LIST}" in str(info.value)
    run.finish()
    assert [list(row) for row in stored_references(root, run.id)] == [["ok"]]
    assert len([p for p in files_under(Path(run.dir)) if p.suffix == ".png"]) == 3  # nothing of the long list


def test_a_list_of_images_in_the_summary(root):
    import mplogger

    run = mplogger.init(dir=root)
    run.summary["gallery"] = [gray(1), gray(2, caption="two")]
    run.summary.update({"pair": (Histogram([1], num_bins=1),)})
    live = dict(run.summary)
    run.finish()
    summary = mplogger.Api(root).run(run.id).summary
    assert summary["gallery"] == live["gallery"] and summary["pair"] == live["pair"]
    assert [ref["caption"] for ref in summary["gallery"]] == [None, "two"]
    assert [ref["path"].rsplit("/", 1)[1].split("_")[:2] for ref in summary["gallery"]] == [["gallery", "0"], ["gallery", "1"]]
    assert all((Path(run.dir) / ref["path"]).is_file() for ref in summary["gallery"])
    assert summary["pair"][0]["_type"] == "histogram"


def log_a_gallery_from_a_child(run) -> None:
    import numpy as np

    run.log({"child_samples": [Image(np.full((2, 2), v, np.uint8), caption=f"c{v}") for v in (10, 20)]})


def test_a_list_of_images_from_a_child_process(root):
    pytest.importorskip("numpy")
    import multiprocessing

    import mplogger

    run = mplogger.init(dir=root)
    child = multiprocessing.get_context("spawn").Process(target=log_a_gallery_from_a_child, args=(run,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    run.finish()
    (row,) = stored_references(root, run.id)
    refs = row["child_samples"]
    assert [ref["caption"] for ref in refs] == ["c10", "c20"] and len({ref["path"] for ref in refs}) == 2
    assert [decode_png((Path(run.dir) / ref["path"]).read_bytes())[3] for ref in refs] == [bytes([10] * 4), bytes([20] * 4)]


def test_a_table_holding_images_is_unaffected_next_to_a_gallery(root):
    import mplogger

    run = mplogger.init(dir=root)
    table = Table(columns=["name", "picture"])
    table.add_data("a", gray(6))
    run.log({"table": table, "tables": [table], "samples": [gray(6)]})
    run.finish()
    (row,) = mplogger.Api(root).run(run.id).history()
    assert isinstance(row["table"], Table) and row["table"].data == [["a", "Image(3x2 png, caption=None)"]]
    (ref,) = row["tables"]
    back = load_media(ref, run.dir) if isinstance(ref, dict) else ref
    assert back == row["table"]
    assert len([p for p in files_under(Path(run.dir)) if p.suffix == ".png"]) == 1  # the gallery's, none for the cell
