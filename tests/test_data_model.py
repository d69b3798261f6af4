from pathlib import Path

import pytest

from bench.config import parse_assignments, resolve_config
from bench.data.prompts import Prompt, PromptSet, load_prompt_set, prompt_id_for
from bench.data.subjects import Subject, load_subject, load_subject_dir
from bench.data.suites import load_suite
from bench.errors import BenchError
from bench.methods.dreambooth_lora import Config as LoRAConfig

SHAPES = Path(__file__).resolve().parent.parent / "subjects" / "shapes"


def test_shapes_subjects_load_with_kinds_from_class():
    subjects = {s.id: s for s in load_subject_dir(SHAPES)}
    assert set(subjects) == {"red_mug", "blue_robot", "ginger_cat"}
    assert subjects["ginger_cat"].kind == "live"
    assert subjects["red_mug"].kind == "object"
    assert subjects["red_mug"].token == "sks"
    assert len(subjects["red_mug"].images) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "plant"}, "kind must be one of"),
        ({"images": ()}, "no reference images"),
        ({"images": (Path("/nonexistent.png"),)}, "does not exist"),
        ({"class_noun": " "}, "class noun is empty"),
        ({"token": "two words"}, "token must be one word"),
        ({"id": "bad/id"}, "id must be"),
    ],
)
def test_subject_validation(kwargs, message):
    base = {
        "id": "x",
        "class_noun": "mug",
        "kind": "object",
        "images": (SHAPES / "red_mug" / "00.png",),
    }
    with pytest.raises(BenchError, match=message):
        Subject(**{**base, **kwargs})


def test_subject_toml_rejects_unknown_keys(tmp_path):
    folder = tmp_path / "thing"
    folder.mkdir()
    (folder / "00.png").write_bytes((SHAPES / "red_mug" / "00.png").read_bytes())
    (folder / "subject.toml").write_text('class = "mug"\ncolour = "red"\n')
    with pytest.raises(BenchError, match=r"subject.toml: unknown key\(s\) colour"):
        load_subject(folder / "subject.toml")


def test_prompt_rendering_and_scoring_convention():
    prompt = Prompt("on_the_beach", "a {token} {class} on the beach")
    assert prompt.render("sks", "dog") == "a sks dog on the beach"
    assert prompt.render(None, "dog") == "a dog on the beach"
    assert prompt_id_for("a red {token} {class}") == "red"
    assert prompt_id_for("a {token} {class} wearing a santa hat") == "wearing_a_santa_hat"


def test_prompt_set_validation():
    with pytest.raises(BenchError, match="appears twice"):
        PromptSet("p", (Prompt("a", "a {token} {class}"), Prompt("a", "a {token} {class} x")))
    with pytest.raises(BenchError, match="must contain"):
        PromptSet("p", (Prompt("a", "a {class}"),))


def test_seed_attribute_prompts_ship():
    prompts = {p.id: p.template for p in load_prompt_set("seed_attributes").prompts}
    assert prompts == {
        "wearing_a_santa_hat": "a {token} {class} wearing a santa hat",
        "red": "a red {token} {class}",
    }


def test_unknown_prompt_set_lists_shipped():
    with pytest.raises(BenchError, match="shipped sets: .*dreambench_live"):
        load_prompt_set("nope")


def test_smoke_and_micro_suites():
    smoke = load_suite("smoke")
    assert smoke.backbone == "world" and smoke.resolution == 64
    assert [s.id for s in smoke.subjects] == ["blue_robot", "ginger_cat", "red_mug"]
    world = Path(__file__).resolve().parent.parent / "subjects" / "world"
    for subject in smoke.subjects:  # the world's photos, as drawn by subjects/world/draw.py
        assert [p.resolve() for p in subject.images] == sorted(
            (world / subject.id).resolve().glob("*.png")
        )
    assert [p.id for p in smoke.prompt_sets["live"].prompts] == [
        "on_the_beach",
        "wearing_a_santa_hat",
        "red",
    ]
    micro = load_suite("micro")
    assert [s.id for s in micro.subjects] == ["red_mug"]
    assert micro.images_per_prompt == 1


def test_unknown_suite_suggests():
    with pytest.raises(BenchError, match="did you mean 'smoke'"):
        load_suite("smoek")


def test_the_renamed_subject_set_says_its_new_name(tmp_path):
    """`smoke` names the suite alone; the drawn shapes the micro suite uses are `shapes`."""
    suite = tmp_path / "old.toml"
    suite.write_text(
        'name = "old"\nbackbone = "tiny"\nresolution = 32\nimages_per_prompt = 1\n'
        'replicates = [0]\n[subjects]\nset = "smoke"\n'
        '[prompts]\nobject = "dreambench_object"\nlive = "dreambench_live"\n'
    )
    with pytest.raises(
        BenchError, match=r'old.toml.*set "smoke" is now "shapes": write set = "shapes"'
    ):
        load_suite(suite)
    assert [s.id for s in load_suite("micro").subjects] == ["red_mug"]  # micro reads `shapes`


def test_suite_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\nbackbone = "tiny"\nresolution = 64\nimages_per_prompt = 1\n'
        'replicates = [0]\nwidth = 3\n[subjects]\nset = "shapes"\n'
        '[prompts]\nobject = "dreambench_object"\nlive = "dreambench_live"\n'
    )
    with pytest.raises(BenchError, match=r"bad.toml: unknown key\(s\) width"):
        load_suite(bad)
    bad.write_text("name = [")
    with pytest.raises(BenchError, match="bad.toml: invalid TOML"):
        load_suite(bad)


def test_suite_needs_prompts_for_every_kind(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'backbone = "tiny"\nresolution = 64\nimages_per_prompt = 1\nreplicates = [0]\n'
        '[subjects]\nset = "shapes"\n[prompts]\nobject = "dreambench_object"\n'
    )
    with pytest.raises(BenchError, match="no prompt set for live subject 'ginger_cat'"):
        load_suite(path)


def test_set_values_parse_as_toml_literals():
    values = parse_assignments(
        [
            "lr=1e-4",
            "rank=8",
            'class_prompt="a robot"',
            "x=[1, 2]",
            "instance_prompt=a {token} thing",
        ]
    )
    assert values["lr"] == 1e-4 and values["rank"] == 8
    assert values["class_prompt"] == "a robot"
    assert values["x"] == [1, 2]
    assert values["instance_prompt"] == "a {token} thing"  # not TOML: kept as text
    with pytest.raises(BenchError, match="expected key=value"):
        parse_assignments(["lr"])


def test_config_layers_and_type_checks():
    config = resolve_config(LoRAConfig, {"rank": 8, "lr": 1e-3}, {"lr": 1})
    assert config.rank == 8 and config.lr == 1.0 and isinstance(config.lr, float)
    with pytest.raises(BenchError, match="unknown option 'rnk' \\(did you mean 'rank'\\?\\)"):
        resolve_config(LoRAConfig, {"rnk": 3})
    with pytest.raises(BenchError, match="option 'rank' expects"):
        resolve_config(LoRAConfig, {"rank": 2.5})
    with pytest.raises(BenchError, match="option 'rank' expects"):
        resolve_config(LoRAConfig, parse_assignments(["rank=four"]))
    with pytest.raises(BenchError, match="rank must be >= 1"):
        resolve_config(LoRAConfig, {"rank": 0})
