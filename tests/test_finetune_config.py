"""Loss mask, training configuration, presets and the QLoRA path (configuration only on the CPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from finetune.config import PRESETS_DIR, AdapterArguments, build_peft_config, build_quantization_config
from finetune.errors import ConfigError
from finetune.tokenize import IGNORE_INDEX, tokenize_conversation
from finetune.train import parse_args

MODEL_DIR = Path("/root/.cache/costar/models/smollm2")


@pytest.fixture(scope="module")
def tokenizer(model_path: Path):  # the real chat template: tests using it are model tests
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


CHAT = [
    {"role": "system", "content": "You are Pip."},
    {"role": "user", "content": "mossy_fern: hi pip!"},
    {"role": "assistant", "content": "Hi hi, welcome in!"},
    {"role": "user", "content": "kettlebyte: tea?"},
    {"role": "assistant", "content": "Peppermint, always."},
]


def _trained_text(tokenizer, tokens) -> str:
    return tokenizer.decode(
        [t for t, label in zip(tokens.input_ids, tokens.labels, strict=True) if label != IGNORE_INDEX]
    )


def test_the_loss_covers_the_characters_turns_and_their_end_of_turn_token_only(tokenizer) -> None:
    tokens = tokenize_conversation(tokenizer, CHAT)

    assert _trained_text(tokenizer, tokens) == "Hi hi, welcome in!<|im_end|>Peppermint, always.<|im_end|>"
    assert tokenizer.decode(tokens.input_ids) == tokenizer.apply_chat_template(
        CHAT, tokenize=False
    )  # serving's template, unchanged


def test_the_multiple_choice_score_can_cover_the_last_reply_alone(tokenizer) -> None:
    tokens = tokenize_conversation(tokenizer, CHAT, last_turn_only=True)
    assert _trained_text(tokenizer, tokens) == "Peppermint, always.<|im_end|>"


def test_truncation_keeps_the_start(tokenizer) -> None:
    tokens = tokenize_conversation(tokenizer, CHAT, max_length=12)
    assert len(tokens.input_ids) == len(tokens.labels) == 12


def test_flags_override_the_preset_which_overrides_the_defaults() -> None:
    adapter, data, sft = parse_args(["--preset", "lora_seed", "--learning_rate", "1e-4", "--output_dir", "/tmp/x"])

    assert (adapter.method, adapter.lora_r, adapter.lora_target_modules) == ("lora", 8, ["q_proj", "v_proj"])
    assert sft.learning_rate == 1e-4  # flag beats preset's 3e-4
    assert sft.per_device_train_batch_size == 32 and sft.weight_decay == 0.01  # from the preset
    assert sft.gradient_checkpointing is False  # our default beats trl's
    assert data.train_file.endswith("pip_train.jsonl")


def test_a_yaml_config_file_works_like_a_preset(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("method: prompt_tuning\nnum_virtual_tokens: 12\nlearning_rate: 0.001\n", encoding="utf-8")
    adapter, _, sft = parse_args(["--config", str(config), "--output_dir", str(tmp_path / "out")])
    assert (adapter.method, adapter.num_virtual_tokens, sft.learning_rate) == ("prompt_tuning", 12, 1e-3)


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem != "qlora"))
def test_every_cpu_preset_parses(preset: str) -> None:
    adapter, _, sft = parse_args(["--preset", preset])
    assert adapter.method in ("lora", "prompt_tuning") and sft.learning_rate > 0


def test_the_seed_presets_hold_the_seed_projects_settings() -> None:
    _, _, pt = parse_args(["--preset", "prompt_tuning_seed"])
    adapter, _, _ = parse_args(["--preset", "prompt_tuning_seed"])
    assert (adapter.num_virtual_tokens, pt.learning_rate, pt.per_device_train_batch_size, pt.weight_decay) == (
        20,
        1e-3,
        32,
        0.01,
    )
    recommended, _, _ = parse_args(["--preset", "recommended"])
    assert (recommended.lora_r, recommended.lora_target_modules) == (16, ["all-linear"])
    r_eq_alpha, _, one_epoch = parse_args(["--preset", "lora_r_equals_alpha"])
    assert (
        r_eq_alpha.lora_r == r_eq_alpha.lora_alpha
        and one_epoch.num_train_epochs == 1
        and one_epoch.learning_rate == 2e-4
    )


def test_a_rank_vllm_cannot_serve_is_refused_before_training() -> None:
    with pytest.raises(ConfigError, match="vLLM only serves LoRA ranks"):
        AdapterArguments(lora_r=12)


def test_continuing_from_a_folder_that_holds_no_adapter_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no adapter_config\.json there"):
        parse_args(["--init_adapter", str(tmp_path)])


def test_prompt_tuning_refuses_packing() -> None:
    with pytest.raises(ConfigError, match="packing is not supported with prompt_tuning"):
        parse_args(["--preset", "prompt_tuning_seed", "--packing", "true"])


def test_an_unknown_preset_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"available: .*recommended"):
        parse_args(["--preset", "nope"])


def test_lora_config_trains_all_linear_layers_without_modules_to_save() -> None:
    config = build_peft_config(AdapterArguments(), str(MODEL_DIR), "Pip")
    assert config.target_modules == "all-linear" or config.target_modules == {"all-linear"}
    assert config.r == 16 and not config.modules_to_save


def test_prompt_tuning_starts_from_the_persona_text() -> None:
    config = build_peft_config(AdapterArguments(method="prompt_tuning"), str(MODEL_DIR), "You are Pip, a green sprite.")
    assert config.num_virtual_tokens == 20
    assert config.prompt_tuning_init_text == "You are Pip, a green sprite."


def test_qlora_preset_is_4bit_nf4_double_quant_bf16_compute_paged_adamw_cosine() -> None:
    import torch

    config = build_quantization_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16

    import yaml

    preset = yaml.safe_load((PRESETS_DIR / "qlora.yaml").read_text(encoding="utf-8"))
    assert (preset["lora_r"], preset["lora_alpha"], preset["lora_dropout"]) == (64, 16, 0.1)
    assert (preset["optim"], preset["lr_scheduler_type"], preset["learning_rate"]) == (
        "paged_adamw_32bit",
        "cosine",
        2e-4,
    )
    adapter = AdapterArguments(method="qlora", lora_r=64, lora_alpha=16, lora_dropout=0.1)
    peft_config = build_peft_config(adapter, str(MODEL_DIR), "Pip")
    assert (peft_config.r, peft_config.lora_alpha, peft_config.lora_dropout) == (64, 16, 0.1)
    assert "bitsandbytes" not in sys.modules  # the CPU path never imports it


def test_qlora_is_refused_without_cuda_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        parse_args(["--preset", "qlora"])


@pytest.mark.gpu
@pytest.mark.model
@pytest.mark.slow
def test_qlora_trains_a_few_steps_on_a_gpu(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs CUDA and bitsandbytes")
    pytest.importorskip("bitsandbytes")
    from engine.serving.adapter_report import inspect_adapter
    from finetune.train import train

    args = parse_args(
        [
            "--preset",
            "qlora",
            "--card",
            str(Path(__file__).parent / "data" / "pip_small_card.yaml"),
            "--output_dir",
            str(tmp_path / "qlora"),
            "--max_steps",
            "8",
            "--max_length",
            "256",
            "--per_device_train_batch_size",
            "4",
            "--gradient_accumulation_steps",
            "1",
            "--eval_file",
            "none",
        ]
    )
    result = train(*args)
    assert result.last_loss is not None and result.first_loss is not None
    assert result.last_loss < result.first_loss
    assert inspect_adapter(result.adapter_dir).vllm_loadable


def test_the_documented_cpu_command_fits_pips_card_and_the_shipped_set(tokenizer) -> None:
    from finetune.train import _conversations, build_dataset

    _, data_args, sft_config = parse_args(
        ["--preset", "recommended", "--max_steps", "60", "--per_device_train_batch_size", "2", "--threads", "1"]
    )
    dataset = build_dataset(_conversations(data_args.train_file, data_args.card, 8), tokenizer, sft_config.max_length)
    assert len(dataset) == 8  # every conversation keeps a character turn at the default max_length


def test_too_short_a_max_length_says_both_lengths_and_the_fix(tokenizer) -> None:
    from finetune.train import _conversations, build_dataset

    _, data_args, _ = parse_args([])
    conversations = _conversations(data_args.train_file, data_args.card, 4)
    with pytest.raises(
        ConfigError, match=r"within max_length=512: the earliest character turn ends at token (\d+)"
    ) as caught:
        build_dataset(conversations, tokenizer, 512)
    assert "pass --max_length 1024 or a shorter --card" in str(caught.value)


def _help(capsys: pytest.CaptureFixture[str], flag: str) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_args([flag])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_is_short_costars_options_and_the_common_trainer_ones_with_their_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _help(capsys, "--help")
    words = " ".join(shown.split())
    for option in ("--preset", "--card", "--train_file", "--eval_file", "--threads", "--help-all"):
        assert option in words, option
    for option in ("--max_steps", "--output_dir", "--max_length", "--learning_rate", "--per_device_train_batch_size"):
        assert option in words, option
    assert "(default: 1024)" in words and "(default: outputs/adapters/pip)" in words
    assert "--adam_beta1" not in words  # one of the trainer's hundreds: --help-all
    assert len(shown.splitlines()) < 150


def test_help_all_lists_every_trainer_option_too(capsys: pytest.CaptureFixture[str]) -> None:
    words = " ".join(_help(capsys, "--help-all").split())
    for option in ("--train_file", "--adam_beta1", "--max_length", "--lr_scheduler_type"):
        assert option in words, option
