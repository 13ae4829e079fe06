"""Encoding detection and hashing of extract files (pipelines/readers.py), across chunk boundaries."""

import hashlib

import pytest

from pipelines import readers
from pipelines.errors import ExtractError
from pipelines.readers import hash_and_detect
from pipelines.textsafe import STORED_CONTROLS

TEXT = "person_id,name\n" + "".join(f"{i},张三丰𠀀\n" for i in range(40))


@pytest.fixture(params=[1, 2, 3, 7, 64, 1 << 20], ids=lambda n: f"chunk{n}")
def chunk(request, monkeypatch):
    monkeypatch.setattr(readers, "_CHUNK", request.param)
    return request.param


def test_utf8_split_across_chunks_is_utf8(tmp_path, chunk):
    path = tmp_path / "a.csv"
    path.write_bytes(TEXT.encode())
    digest, size, encoding, _ = hash_and_detect(path, "a.csv")
    assert (digest, size, encoding) == (hashlib.sha256(TEXT.encode()).hexdigest(), len(TEXT.encode()), "utf-8")


def test_bom_is_reported(tmp_path, chunk):
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    assert hash_and_detect(path, "a.csv")[2] == "utf-8-sig"


def test_damage_after_many_chunks_names_the_byte(tmp_path, chunk):
    good = TEXT.encode()
    path = tmp_path / "a.csv"
    path.write_bytes(good + b"9,\xe5\xbc,x\n" + good)
    with pytest.raises(ExtractError) as err:
        hash_and_detect(path, "a.csv")
    assert f"invalid byte sequence near byte {len(good) + 2}" in str(err.value)
    assert "a.csv" in str(err.value)


def test_file_cut_off_inside_a_character(tmp_path, chunk):
    path = tmp_path / "a.csv"
    path.write_bytes(TEXT.encode() + "9,张".encode()[:-1])
    with pytest.raises(ExtractError, match="ends in the middle of a character"):
        hash_and_detect(path, "a.csv")


def test_gbk_is_not_utf8(tmp_path, chunk):
    path = tmp_path / "a.csv"
    path.write_bytes(TEXT.replace("𠀀", "").encode("gbk"))
    assert hash_and_detect(path, "a.csv")[2] is None


def test_gbk_after_long_ascii_is_not_utf8(tmp_path, chunk):
    path = tmp_path / "a.csv"
    path.write_bytes(("id,name\n" + "1,abc\n" * 50 + "2,王伟\n").encode("gbk"))
    assert hash_and_detect(path, "a.csv")[2] is None


def test_a_line_longer_than_the_buffer_is_still_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "_CHUNK", 4)
    path = tmp_path / "a.csv"
    path.write_bytes(("张" * 40).encode() + b"\xff" + ("张" * 40).encode())
    with pytest.raises(ExtractError, match="near byte 120"):
        hash_and_detect(path, "a.csv")


def test_binary_formats_are_only_hashed(tmp_path):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"\xff\xfe\x00PAR1")
    assert hash_and_detect(path, "a.parquet", text=False)[2] is None


@pytest.mark.parametrize("control", STORED_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_character_is_found_wherever_the_chunks_cut(tmp_path, chunk, control):
    path = tmp_path / "a.csv"
    path.write_bytes((TEXT + f"41,张{control}三\n" + TEXT).encode())
    assert hash_and_detect(path, "a.csv").controls


@pytest.mark.parametrize("near_miss", ["\t", "\r\n", "·", "阿依古丽·买买提", "—…“”", "\u2027", "\u202f", "\u2065", "\u206a", "\xa0"])
def test_text_without_control_characters_is_known_free_of_them(tmp_path, chunk, near_miss):
    """Tab, CR/LF, '·' (C2 B7), CJK punctuation and the neighbours of the escaped ranges are not controls."""
    path = tmp_path / "a.csv"
    path.write_bytes((TEXT + f"41,张{near_miss}三\n").encode())
    assert not hash_and_detect(path, "a.csv").controls


def test_files_other_than_utf8_text_are_always_escaped(tmp_path):
    gbk = tmp_path / "g.csv"
    gbk.write_bytes("person_id,name\n1,张三\n".encode("gb18030"))
    assert hash_and_detect(gbk, "g.csv").controls
    binary = tmp_path / "a.parquet"
    binary.write_bytes(b"PAR1")
    assert hash_and_detect(binary, "a.parquet", text=False).controls
