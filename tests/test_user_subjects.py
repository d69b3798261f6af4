"""`bench subjects add`: a user's own subject, checked, copied to BENCH_HOME, and run on with
`bench run --subject`; `--prompt-file` and `[subjects] user = [...]` in suites."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.data.user_subjects import load_user_subject

REPO = Path(__file__).resolve().parent.parent
RED_MUG = REPO / "subjects" / "shapes" / "red_mug"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """BENCH_HOME in the test's folder; not created until something is registered."""
    path = tmp_path / "home"
    monkeypatch.setenv("BENCH_HOME", str(path))
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two of the red mug's PNGs, a note and a file that only claims to be a PNG."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(RED_MUG / "00.png", folder / "mug_a.png")
    shutil.copy(RED_MUG / "01.png", folder / "mug_b.png")
    (folder / "notes.txt").write_text("taken in the kitchen")
    (folder / "broken.png").write_bytes(b"not a png at all")
    return folder


def add(name, folder, *extra):
    return invoke("subjects", "add", name, "--class", "mug", "--images", folder, *extra)


def test_add_copies_the_usable_photos_and_the_subject_loads(home, photos):
    result = add("my_mug", photos)
    assert result.exit_code == 0, result.output
    folder = home / "subjects" / "my_mug"
    assert sorted(p.name for p in folder.iterdir()) == ["00.png", "01.png", "subject.toml"]
    assert (folder / "00.png").read_bytes() == (photos / "mug_a.png").read_bytes()
    assert (folder / "01.png").read_bytes() == (photos / "mug_b.png").read_bytes()
    # Not an error: a warning for fewer than 3 photos, and the files left out, by name.
    assert "warning" in result.output and "only 2 usable image" in result.output
    assert "skipped" in result.output
    assert "notes.txt" in result.output and "broken.png" in result.output

    subject = load_user_subject("my_mug")
    assert (subject.id, subject.class_noun, subject.kind, subject.token) == (
        "my_mug",
        "mug",
        "object",
        "sks",
    )
    assert subject.images == (folder / "00.png", folder / "01.png")
    assert subject.source == str(photos.resolve()) and subject.license == "user-provided"

    listing = invoke("subjects", "list", "--user")
    assert listing.exit_code == 0 and "my_mug" in listing.output


def test_kind_defaults_from_the_class_and_formats_are_kept(home, tmp_path):
    folder = tmp_path / "cat_photos"
    folder.mkdir()
    for i, suffix in enumerate((".jpeg", ".png", ".webp")):
        with Image.open(RED_MUG / f"0{i}.png") as image:
            image.convert("RGB").save(folder / f"cat{i}{suffix}")
    result = invoke(
        "subjects", "add", "tom", "--class", "cat", "--images", folder, "--token", "zwx"
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # 3 photos are enough
    tom = load_user_subject("tom")
    assert tom.kind == "live" and tom.token == "zwx"
    assert [p.name for p in tom.images] == ["00.jpg", "01.png", "02.webp"]
    assert [Image.open(p).format for p in tom.images] == ["JPEG", "PNG", "WEBP"]

    result = invoke(
        "subjects", "add", "felix", "--class", "cat", "--images", folder, "--kind", "object"
    )
    assert result.exit_code == 0, result.output
    assert load_user_subject("felix").kind == "object"


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output


def test_a_folder_without_a_usable_image_is_rejected_and_nothing_is_written(home, photos):
    for good in ("mug_a.png", "mug_b.png"):
        (photos / good).unlink()
    _one_line_error(add("my_mug", photos), str(photos), "no usable image")
    assert not home.exists()


def test_a_missing_folder_or_a_bad_name_is_rejected(home, tmp_path, photos):
    _one_line_error(add("my_mug", tmp_path / "nowhere"), "nowhere", "folder not found")
    _one_line_error(add("../escape", photos), "'../escape'", "letters, digits")
    _one_line_error(
        invoke("subjects", "add", "m", "--class", "mug", "--images", photos, "--kind", "plant"),
        "--kind 'plant'",
    )
    assert not home.exists()


def test_a_duplicate_name_is_rejected_unless_forced(home, photos, tmp_path):
    assert add("my_mug", photos).exit_code == 0
    before = {p.name: p.read_bytes() for p in (home / "subjects" / "my_mug").iterdir()}
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        shutil.copy(RED_MUG / f"0{i + 1}.png", other / f"{i}.png")

    _one_line_error(add("my_mug", other), "already registered", "--force")
    after = {p.name: p.read_bytes() for p in (home / "subjects" / "my_mug").iterdir()}
    assert after == before

    forced = add("my_mug", other, "--force")
    assert forced.exit_code == 0, forced.output
    assert "replaced" in forced.output
    subject = load_user_subject("my_mug")
    assert [p.read_bytes() for p in subject.images] == [
        (RED_MUG / f"0{i + 1}.png").read_bytes() for i in range(3)
    ]
    assert sorted(p.name for p in (home / "subjects").iterdir()) == ["my_mug"]  # no leftovers


def run_json(*args):
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_run_on_a_user_subject(home, photos, tmp_path):
    assert add("my_mug", photos).exit_code == 0
    runs = tmp_path / "runs"
    result = run_json(
        "--method", "dreambooth_lora", "--suite", "micro", "--subject", "my_mug", "--runs", runs,
        "--no-score",  # scoring is tested elsewhere; here it would triple the time
    )  # fmt: skip
    assert result["fitted"] == 1 and result["generated"] == 2
    run_dir = Path(result["run_dir"])
    assert run_dir == runs / "micro-my_mug" / result["run_id"]  # stored apart from micro's runs
    assert [p.name for p in run_dir.iterdir() if p.is_dir()] == ["my_mug"]
    manifest = json.loads((run_dir / "my_mug" / "replicate-0" / "manifest.json").read_text())
    assert manifest["subject"]["id"] == "my_mug"
    assert manifest["subject"]["license"] == "user-provided"
    assert manifest["subject"]["images"] == [
        str(home / "subjects" / "my_mug" / n) for n in ("00.png", "01.png")
    ]
    # The suite's prompts and protocol are kept.
    assert {i["prompt_id"] for i in manifest["images"]} == {"on_the_beach", "red"}
    assert manifest["generation"]["steps"] == 4 and manifest["resolution"] == 32

    unknown = invoke("run", "--method", "dreambooth_lora", "--suite", "micro", "--subject", "nope")
    _one_line_error(
        unknown,
        "--subject nope: neither a subject of suite 'micro' (red_mug) nor a registered user",
        "bench subjects add nope",
    )


def test_subject_picks_the_suites_own_subjects_too(home, photos, tmp_path):
    """`--subject` names one of the suite's subjects (a registered user subject of that name
    wins), alone or beside user subjects."""
    assert add("my_mug", photos).exit_code == 0
    mixed = run_json(
        "--method", "base", "--suite", "smoke", "--subject", "red_mug", "--subject", "my_mug",
        "--runs", tmp_path, "--dry-run",
    )  # fmt: skip
    assert mixed["suite"] == "smoke-red_mug+my_mug" and mixed["subjects"] == 2
    assert mixed["cells"] == 2 * (3 * 2 + 2)  # 3 object prompts x 2 images, 2 prior images
    import bench

    loaded = bench.load_suite("smoke", subjects=["red_mug", "my_mug"])
    world_mug = Path(__file__).resolve().parents[1] / "subjects" / "world" / "red_mug"
    assert [s.id for s in loaded.subjects] == ["red_mug", "my_mug"]
    assert loaded.subjects[0].images[0].resolve() == (world_mug / "00.png").resolve()
    assert loaded.subjects[1].images[0] == home / "subjects" / "my_mug" / "00.png"


def test_prompt_file_replaces_the_suites_prompts(home, tmp_path):
    base = run_json(
        "--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path, "--dry-run"
    )
    assert base["cells"] == 2
    prompt_file = tmp_path / "mine.toml"
    prompt_file.write_text('[[prompt]]\ntemplate = "a {token} {class} on the moon"\n')
    custom = run_json(
        "--method", "dreambooth_lora", "--suite", "micro", "--runs", tmp_path, "--dry-run",
        "--prompt-file", prompt_file,
    )  # fmt: skip
    assert custom["cells"] == 1 and custom["run_id"] != base["run_id"]
    assert custom["suite"] == "micro"

    missing = invoke(
        "run",
        "--method",
        "dreambooth_lora",
        "--suite",
        "micro",
        "--prompt-file",
        tmp_path / "x.toml",
    )
    _one_line_error(missing, "x.toml", "file not found")


def _suite(tmp_path, subjects: str, prompts: str) -> Path:
    micro = (REPO / "suites" / "micro.toml").read_text()
    head, _, rest = micro.partition("[subjects]")
    _, _, tail = rest.partition("[generation]")
    path = tmp_path / "mine.toml"
    path.write_text(
        head.replace('name = "micro"', 'name = "mine"')
        + f"[subjects]\n{subjects}\n\n[prompts]\n{prompts}\n\n[generation]"
        + tail
    )
    return path


def test_suites_name_user_subjects_and_need_their_kinds_prompts(home, photos, tmp_path):
    assert add("my_mug", photos).exit_code == 0
    assert invoke("subjects", "add", "tom", "--class", "cat", "--images", photos).exit_code == 0
    object_only = 'object = { set = "dreambench_object", ids = ["red"] }'

    suite = _suite(tmp_path, 'user = ["my_mug"]', object_only)
    plan = run_json(
        "--method", "dreambooth_lora", "--suite", suite, "--runs", tmp_path, "--dry-run"
    )
    assert (plan["suite"], plan["subjects"], plan["cells"]) == ("mine", 1, 1)
    mixed = _suite(tmp_path, 'set = "shapes"\nids = ["red_mug"]\nuser = ["my_mug"]', object_only)
    plan = run_json(
        "--method", "dreambooth_lora", "--suite", mixed, "--runs", tmp_path, "--dry-run"
    )
    assert plan["subjects"] == 2

    # tom is a cat: live, and this suite has object prompts only.
    live = invoke("run", "--method", "dreambooth_lora", "--suite", suite, "--subject", "tom")
    _one_line_error(live, "no prompts for live subjects", "--prompt-file")
    # Two subjects: the suite is named after both; a prompt file covers both kinds.
    prompt_file = tmp_path / "one.toml"
    prompt_file.write_text('[[prompt]]\ntemplate = "a {token} {class} on the moon"\n')
    both = run_json(
        "--method", "dreambooth_lora", "--suite", suite, "--runs", tmp_path, "--dry-run",
        "--subject", "my_mug", "--subject", "tom", "--prompt-file", prompt_file,
    )  # fmt: skip
    assert (both["suite"], both["subjects"], both["cells"]) == ("mine-my_mug+tom", 2, 2)
