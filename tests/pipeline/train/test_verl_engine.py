"""The verl engine without a GPU: config translation (golden files), the translated
overrides composed with verl's real Hydra config and checked by verl's own
``validate_config`` (as ``main_ppo`` does), the ``pipeline_terms`` and
``pipeline_progress`` advantage estimators run through verl's ``compute_advantage``
on a real ``DataProto``, the plugins loaded through ``VERL_USE_EXTERNAL_MODULES``,
and the ``self_correction`` and ``progress`` agent loops built as verl's
``AgentLoopWorker`` builds them (registry entry, ``hydra.utils.instantiate``, the
composed config, a real tokenizer) and run against a scripted server manager: the
vLLM server is the one part replaced. The run itself is in tests/pipeline/train/test_gpu.py.

Golden files: tests/fixtures/verl/<name>.txt is ``--dry-run``'s command for
configs/train/tiny.yaml (``tiny``) and tests/fixtures/verl/<name>.yaml, with the
repository path written as <REPO>. After an intended change, regenerate with

    PIPELINE_REGEN_GOLDEN=1 .venv/bin/python -m pytest -q tests/pipeline/train/test_verl_engine.py -k golden

and review the diff.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, load_config
from pipeline.train import verl_engine
from pipeline.train.config import TrainConfig
from pipeline.train.verl_engine import Cluster, build_launch

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "fixtures" / "verl"
CONFIGS = {
    "tiny": REPO / "configs" / "train" / "tiny.yaml",
    "alp": DATA / "alp.yaml",
    "self_correction": DATA / "self_correction.yaml",
    "progress": DATA / "progress.yaml",
}
CLUSTER = Cluster(nnodes=2, gpus_per_node=8)


def launch_for(name: str, **overrides):
    cfg = load_config(TrainConfig, CONFIGS[name], overrides or None)
    return build_launch(cfg, REPO / "runs" / f"verl-{name}", cluster=CLUSTER, resume=True)


def golden_text(launch) -> str:
    return launch.render().replace(str(REPO), "<REPO>")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_golden_command(name):
    text = golden_text(launch_for(name))
    path = DATA / f"{name}.txt"
    if os.environ.get("PIPELINE_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"translation of {name} changed; see the module docstring to regenerate"


@pytest.fixture(scope="module")
def composed():
    """Each golden config's overrides composed with verl's Hydra config and validated."""
    return {name: verl_engine.validate(launch_for(name)) for name in CONFIGS}


@pytest.mark.slow
def test_translation_reaches_verls_config(composed):
    tiny, alp, sc = composed["tiny"], composed["alp"], composed["self_correction"]
    actor = alp.actor_rollout_ref.actor
    assert alp.algorithm.adv_estimator == "pipeline_terms" and alp.algorithm.pipeline.base_estimator == "grpo"
    assert alp.algorithm.norm_adv_by_std_in_grpo is False
    assert dict(alp.algorithm.pipeline.terms.alp) == {"weight": 1.0, "beta": 0.5}
    assert alp.algorithm.pipeline.max_response_length == 256 == alp.data.max_response_length
    assert actor.loss_agg_mode == "seq-mean-token-sum-norm" and actor.loss_scale_factor == 256
    assert actor.use_kl_loss and actor.kl_loss_coef == 0.001 and actor.kl_loss_type == "low_var_kl"
    assert actor.ppo_mini_batch_size == 16 and actor.ppo_epochs == 2 and actor.ppo_micro_batch_size_per_gpu == 8
    assert actor.optim.lr_scheduler_type == "cosine" and actor.optim.lr_warmup_steps == 5
    assert actor.optim.clip_grad == 0.5 and actor.optim.weight_decay == 0.01
    assert alp.actor_rollout_ref.rollout.top_p == 0.95 and alp.actor_rollout_ref.rollout.val_kwargs.n == 8
    assert alp.reward.custom_reward_function.reward_kwargs.mode == "lenient"
    assert "correct_score" not in alp.reward.custom_reward_function.reward_kwargs  # 1/0 verdicts for the estimator
    assert alp.trainer.test_freq == 25 and alp.trainer.max_actor_ckpt_to_keep == 3 and alp.data.seed == 7
    # the outcome term alone: verl's own estimator, the term's values as the reward function's scores
    assert tiny.algorithm.adv_estimator == "grpo" and not tiny.actor_rollout_ref.actor.use_kl_loss
    assert tiny.reward.custom_reward_function.reward_kwargs.correct_score == 1.0
    assert tiny.trainer.total_training_steps == 80 and tiny.trainer.save_freq == 20
    assert tiny.trainer.nnodes == 2 and tiny.trainer.n_gpus_per_node == 8
    assert tiny.trainer.default_local_dir == str(REPO / "runs" / "verl-tiny" / "checkpoints")
    env = tiny.ray_kwargs.ray_init.runtime_env.env_vars
    assert env.VERL_USE_EXTERNAL_MODULES == "pipeline.train.verl_plugin,pipeline.train.verl_agent_loop"
    assert tiny.actor_rollout_ref.rollout.agent.default_agent_loop == "single_turn_agent"  # verl's own
    # self-correction: the agent loop, its settings
    assert sc.actor_rollout_ref.rollout.agent.default_agent_loop == "self_correction"
    assert sc.algorithm.pipeline.self_correction.bonus == 5.0
    assert sc.algorithm.pipeline.terms.outcome.incorrect == -1.0
    assert sc.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"
    assert sc.trainer.val_before_train is False and sc.trainer.test_freq == -1


def test_verifier_service_translation():
    """reward.verifier.service_url: verl's reward workers await the async remote scorer at that address."""
    launch = launch_for("tiny", reward={"verifier": {"service_url": "http://verifier:8000"}})
    cfg = verl_engine.validate(launch)
    fn = cfg.reward.custom_reward_function
    assert fn.name == "compute_score_remote" and fn.reward_kwargs.url == "http://verifier:8000"
    import rewards.verl_adapter as adapter

    assert asyncio.iscoroutinefunction(getattr(adapter, fn.name))  # verl awaits async reward functions
    with pytest.raises(ConfigError, match="service_url"):
        launch_for("tiny", reward={"verifier": {"service_url": "verifier:8000"}})


def test_a_wrong_key_or_value_is_rejected_by_verl():
    launch = launch_for("tiny")
    launch.overrides.append("actor_rollout_ref.actor.clip_ratio_hgh=0.3")
    with pytest.raises(ConfigError, match="verl rejected the translated config: .*clip_ratio_hgh"):
        verl_engine.validate(launch)
    launch = launch_for("tiny")
    launch.overrides.append("actor_rollout_ref.actor.ppo_mini_batch_size=64")  # more prompts than a step has
    with pytest.raises(ConfigError, match="train_batch_size \\(16\\) must be >= actor.ppo_mini_batch_size"):
        verl_engine.validate(launch)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"progress": {"enabled": True, "pav_model": "runs/pav/model"}}, "progress.pav_model is not supported"),
        ({"progress": {"enabled": True, "prover_model": "runs/prover"}}, "progress.prover_model is not supported"),
        (
            {"progress": {"enabled": True}, "self_correction": {"enabled": True}},
            "progress with self_correction is not supported",
        ),
        ({"progress": {"enabled": True, "baseline": "termination"}}, "progress.baseline termination is not supported"),
        ({"self_correction": {"enabled": True, "stage": 1}}, "self_correction.stage 1 is not supported"),
        (
            {
                "self_correction": {"enabled": True},
                "reward": {"terms": {"outcome": {}, "alp": {}}},
                "algorithm": {"norm_adv_by_std": False},
            },
            "self_correction with reward terms ['alp']",
        ),
        ({"optim": {"schedule": "linear"}}, "constant and cosine schedules only"),
        ({"model": {"device": "cpu"}}, "model.device 'cpu'"),
        ({"model": {"gguf_file": "m.gguf"}}, "model.gguf_file"),
        ({"algorithm": {"mini_batches": 3}}, "divisible by algorithm.mini_batches"),
        ({"prompts_per_step": 3, "rollout": {"n": 5}}, "15 responses per step must be divisible by the 16 GPU(s)"),
    ],
)
def test_settings_verl_cannot_express_are_errors(overrides, message):
    with pytest.raises(ConfigError) as e:
        launch_for("tiny", **overrides)
    assert message in str(e.value)


def test_local_only_settings_are_noted_not_dropped():
    notes = "\n".join(launch_for("tiny").notes)
    for key in ("model.dtype float32", "rollout.backend hf", "rollout.max_batch 256", "threads 2"):
        assert key in notes
    assert not any("rollout.backend" in n for n in launch_for("alp").notes)  # vllm is what verl uses


def test_cluster_size_from_flags_then_slurm():
    env = {"SLURM_JOB_NUM_NODES": "4", "SLURM_GPUS_ON_NODE": "8"}
    assert verl_engine.cluster_from_env(None, None, env) == Cluster(4, 8)
    assert verl_engine.cluster_from_env(2, 4, env) == Cluster(2, 4)
    assert verl_engine.cluster_from_env(None, 2, {"SLURM_NNODES": "3"}) == Cluster(3, 2)


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )


@pytest.mark.slow
def test_cli_dry_run_prints_the_golden_command(tmp_path):
    r = _cli(
        "train",
        "--engine",
        "verl",
        "--config",
        str(CONFIGS["tiny"]),
        "--out",
        str(REPO / "runs" / "verl-tiny"),
        "--resume",
        "--dry-run",
        "--nnodes",
        "2",
        "--gpus-per-node",
        "8",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace(str(REPO), "<REPO>") == (DATA / "tiny.txt").read_text()
    assert "note: rollout.backend hf" in r.stderr
    assert r.stderr.splitlines()[0] == "reward: outcome (response)"  # the reward ideas the config turns on
    assert not (REPO / "runs" / "verl-tiny").exists()  # a dry run writes nothing
    r = _cli("train", "--config", str(CONFIGS["tiny"]), "--out", str(tmp_path / "o"), "--dry-run")
    assert (
        r.returncode == 2
        and r.stderr.strip() == "error: --dry-run, --nnodes, --gpus-per-node and --override are for --engine verl"
    )


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cli_without_a_gpu_fails_at_once_with_one_line(tmp_path):
    r = _cli("train", "--engine", "verl", "--config", str(CONFIGS["alp"]), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: the verl engine needs CUDA GPUs (verl 0.9.1's Ray trainer "
        "cannot run on CPU); this machine has none. Use --engine local here, "
        "or --dry-run to see the verl command"
    ]


# ----------------------------------------------------------------------------- the advantage estimator


@pytest.mark.slow
def test_plugin_registers_through_verl_use_external_modules():
    code = (
        "import verl\nfrom verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY\n"
        "print(ADV_ESTIMATOR_REGISTRY['pipeline_terms'].__module__)"
    )
    env = {
        **os.environ,
        "VERL_USE_EXTERNAL_MODULES": verl_engine.PLUGIN_MODULE,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd="/")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "pipeline.train.verl_plugin"


def _rollout_batch(correct, lengths, uids, width):
    """What verl's trainer holds at the advantage step: the verdict (1/0) on each
    response's last token, the response mask, the prompt uids."""
    from verl import DataProto

    mask = torch.zeros(len(correct), width)
    scores = torch.zeros(len(correct), width)
    for i, (c, n) in enumerate(zip(correct, lengths)):
        mask[i, :n] = 1
        scores[i, n - 1] = float(c)
    return DataProto.from_dict(
        tensors={"token_level_rewards": scores, "response_mask": mask},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )


def compute_advantage(data, adv_estimator, norm_adv_by_std_in_grpo, config):
    """verl's own dispatch (``ray_trainer.compute_advantage``, which the v1 trainer's
    ``compute_advantage_for_multi_trajectories`` calls for every estimator but GRPO):
    a registered estimator is looked up by name and called with the token rewards, the
    response mask, the uids as ``index`` and ``config.algorithm``."""
    from verl.trainer.ppo.ray_trainer import compute_advantage as verl_compute_advantage

    return verl_compute_advantage(
        data, adv_estimator=adv_estimator, norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo, config=config
    )


def test_terms_estimator_through_verls_dispatch_matches_the_local_engine(composed):
    """The estimator, looked up and called as verl's trainer does with the composed
    config's algorithm node, gives exactly what the local engine computes from the
    same verdicts."""
    importlib.import_module(verl_engine.PLUGIN_MODULE)  # what VERL_USE_EXTERNAL_MODULES imports
    from pipeline.train import algorithms
    from rewards.terms import RolloutScores, compose

    algo = composed["alp"].algorithm
    correct = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0]
    lengths = [20, 60, 100, 256, 30, 80, 256, 256, 10, 40, 90, 200, 50, 120, 256, 5]
    uids = ["a"] * 8 + ["b"] * 8
    data = compute_advantage(
        _rollout_batch(correct, lengths, uids, 256),
        adv_estimator=algo.adv_estimator,
        norm_adv_by_std_in_grpo=algo.norm_adv_by_std_in_grpo,
        config=algo,
    )
    adv = data.batch["advantages"]

    terms = {"outcome": {"weight": 1.0}, "alp": {"weight": 1.0, "beta": 0.5}, "overlong": {"weight": 1.0, "cache": 64}}
    batch = RolloutScores(
        correct=np.array(correct, bool),
        response_length=lengths,
        group=np.array(uids),
        group_size=8,
        max_response_length=256,
        truncated=np.array(lengths) >= 256,
    )
    total, parts = compose(batch, terms)
    expected = algorithms.compute_advantages(
        load_config(TrainConfig, CONFIGS["alp"]).algorithm, total, data.batch["response_mask"], np.array(uids)
    )
    torch.testing.assert_close(adv, expected)
    assert (parts["alp"] < 0).all() and parts["overlong"][3] == -1.0
    # the terms change the ranking: in group a, the all-correct half is ordered by length
    seq = (adv * data.batch["response_mask"]).sum(-1) / data.batch["response_mask"].sum(-1)
    assert seq[0] > seq[1] > seq[2] > seq[3]
    # without the group terms, verl's plain GRPO gives the four correct answers one advantage
    plain = compute_advantage(
        _rollout_batch(correct, lengths, uids, 256), adv_estimator="grpo", norm_adv_by_std_in_grpo=False, config=algo
    ).batch["advantages"]
    assert torch.allclose(plain[:4, 0], plain[0, 0]) and not torch.allclose(adv[:4, 0], adv[0, 0])


def _user_term(batch, *, scale: float = 1.0):
    """A reward term the project does not ship (registered by the test below)."""
    return -scale * batch.response_length / batch.max_response_length


def test_a_term_registered_outside_the_project_is_routed_to_verl_with_its_module():
    """Any term but outcome goes through pipeline_terms (before: only alp, overlong and
    length did, and verl's plain GRPO silently dropped the rest); its module is imported
    in every Ray process; a term verl's workers cannot import is an error."""
    importlib.import_module(verl_engine.PLUGIN_MODULE)
    from pipeline.train import algorithms
    from rewards.terms import TERMS, RolloutScores, compose, register_term

    register_term("_test_user_term")(_user_term)
    try:
        terms = {"outcome": {"weight": 1.0}, "_test_user_term": {"weight": 1.0, "scale": 2.0}}
        launch = launch_for("tiny", reward={"terms": terms})
        cfg = verl_engine.validate(launch)
        assert cfg.algorithm.adv_estimator == "pipeline_terms"
        env = cfg.ray_kwargs.ray_init.runtime_env.env_vars
        assert env.VERL_USE_EXTERNAL_MODULES.split(",") == [
            verl_engine.PLUGIN_MODULE,
            verl_engine.AGENT_LOOP_MODULE,
            "tests.pipeline.train.test_verl_engine",
        ]
        # the term's module is in the repository's tests/, not in an installed package: its root travels
        assert env.PYTHONPATH == str(REPO)
        # tiny.yaml's budget is 40 tokens (rollout.max_new_tokens)
        correct, lengths, uids = [1, 1, 0, 0, 1, 0, 1, 0], [10, 30, 15, 40, 5, 20, 25, 35], ["a"] * 4 + ["b"] * 4
        data = compute_advantage(
            _rollout_batch(correct, lengths, uids, 40),
            adv_estimator=cfg.algorithm.adv_estimator,
            norm_adv_by_std_in_grpo=cfg.algorithm.norm_adv_by_std_in_grpo,
            config=cfg.algorithm,
        )
        total, parts = compose(
            RolloutScores(
                correct=np.array(correct, bool),
                response_length=lengths,
                group=np.array(uids),
                group_size=8,
                max_response_length=40,
            ),
            terms,
        )
        expected = algorithms.compute_advantages(
            load_config(TrainConfig, CONFIGS["tiny"]).algorithm, total, data.batch["response_mask"], np.array(uids)
        )
        torch.testing.assert_close(data.batch["advantages"], expected)
        assert parts["_test_user_term"][1] == pytest.approx(-2 * 30 / 40)
        seq = data.batch["advantages"][:, 0]
        assert seq[0] > seq[1]  # the term ranks the two right answers of prompt a; the verdict alone ties them

        def in_a_script(batch):
            return np.zeros(len(batch.correct))

        in_a_script.__module__ = "__main__"
        TERMS["_test_script_term"] = in_a_script
        with pytest.raises(
            ConfigError, match="'_test_script_term' is defined in '__main__', which verl's Ray workers cannot import"
        ):
            launch_for("tiny", reward={"terms": {"outcome": {}, "_test_script_term": {}}})
    finally:
        TERMS.pop("_test_user_term", None)
        TERMS.pop("_test_script_term", None)
    # a process that did not import the term's module says so instead of dropping it
    from pipeline.train.verl_plugin import terms_advantage

    b = _rollout_batch(correct, lengths, uids, 40)
    with pytest.raises(ValueError, match="not registered in this process"):
        terms_advantage(
            b.batch["token_level_rewards"], b.batch["response_mask"], np.array(uids, dtype=object), cfg.algorithm
        )


def test_a_term_module_outside_the_repository_travels_with_its_import_root(tmp_path, monkeypatch):
    pkg = tmp_path / "lab_terms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "brevity.py").write_text(
        "from rewards.terms import register_term\n\n\n"
        "@register_term('_test_lab_brevity')\n"
        "def brevity(batch, *, weight_per_token: float = 0.0):\n"
        "    return -weight_per_token * batch.response_length\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from rewards.terms import TERMS

    try:
        importlib.import_module("lab_terms.brevity")
        env = launch_for("tiny", reward={"terms": {"outcome": {}, "_test_lab_brevity": {}}}).env
        assert env["VERL_USE_EXTERNAL_MODULES"].endswith(",lab_terms.brevity")
        assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path.resolve())]  # the installed packages need none
    finally:
        TERMS.pop("_test_lab_brevity", None)
        sys.modules.pop("lab_terms.brevity", None)
        sys.modules.pop("lab_terms", None)


def test_terms_estimator_needs_the_uids(composed):
    from pipeline.train.verl_plugin import terms_advantage

    b = _rollout_batch([1, 0], [3, 4], ["a", "a"], 8)
    with pytest.raises(ValueError, match="needs the prompt uids"):
        terms_advantage(b.batch["token_level_rewards"], b.batch["response_mask"], None, composed["alp"].algorithm)


# ----------------------------------------------------------------------------- self-correction turns


def test_self_correction_turns_with_a_real_tokenizer(task_files):
    from transformers import AutoTokenizer

    from pipeline.config import SelfCorrectionConfig
    from pipeline.models.policy import encode_prompt
    from pipeline.models.rollout import second_attempt_prompt
    from pipeline.train.verl_plugin import attempt_outputs
    from rewards.self_correction import attempt_targets

    tok = AutoTokenizer.from_pretrained(task_files["model"])
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    first_text = "2 + 3 = 6. The answer is \\boxed{6}."
    instruction = SelfCorrectionConfig().instruction
    prompt = encode_prompt(tok, messages)
    first = tok(first_text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    second_prompt = second_attempt_prompt(tok, messages, first_text, instruction)
    second = tok("2 + 3 = 5. The answer is \\boxed{5}.", add_special_tokens=False)["input_ids"]
    one, two = attempt_outputs(prompt, first, second_prompt, second, response_length=12)
    assert one["prompt_ids"] == prompt and two["prompt_ids"] == second_prompt
    assert one["response_ids"] == first[:12] and len(two["response_ids"]) == 12
    assert one["response_mask"] == [1] * 12 and two["response_mask"] == [1] * 12
    # the second prompt is the conversation so far: question, first attempt, instruction, then the assistant's turn
    text = tok.decode(second_prompt)
    assert text.startswith(tok.decode(prompt)) and text.index(first_text) < text.index(instruction)
    assert text.endswith("<|assistant|>") and text.count("<|user|>") == 2
    # a one-token attempt is padded with a masked token to carry its attempt marker
    one, two = attempt_outputs(prompt, [7], second_prompt, [], response_length=12, pad_id=0)
    assert (one["response_ids"], one["response_mask"]) == ([7, 0], [1, 0])
    assert (two["response_ids"], two["response_mask"]) == ([0, 0], [0, 0])
    # stage 2 targets: r(y1); r(y2) + bonus * c2
    outcome = {"weight": 1.0, "correct": 1.0, "incorrect": -1.0}
    sc = SelfCorrectionConfig(enabled=True, stage=2, bonus=5.0)
    assert attempt_targets(sc, False, True, outcome) == (-1.0, 6.0)
    assert attempt_targets(sc, True, False, outcome) == (1.0, -1.0)
    assert attempt_targets(sc, True, True, outcome) == (1.0, 6.0)


# ----------------------------------------------------------------------------- the agent loops, as verl runs them


class ScriptedServer:
    """The vLLM server boundary: ``generate`` as verl's ``LLMServerClient.generate`` is
    called by agent loops, returning verl's ``TokenOutput``. The first replies are
    scripted token ids; later ones come from ``prover`` (tests/arithmetic_prover.py),
    cut at the request's ``max_tokens``. Every request is recorded."""

    def __init__(self, script, prover=None):
        self.script = [list(s) for s in script]
        self.prover = prover
        self.calls: list[tuple[list[int], dict]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **_):
        from verl.workers.rollout.replica import TokenOutput

        from pipeline.models.rollout import Sampling

        self.calls.append((list(prompt_ids), dict(sampling_params)))
        if self.script:
            ids = self.script.pop(0)
        else:
            limit = Sampling(max_new_tokens=sampling_params["max_tokens"])
            ids = self.prover.generate([list(prompt_ids)], 1, limit)[0][0]
        return TokenOutput(token_ids=ids, stop_reason="completed")


def run_agent_loop(config, name, tokenizer, server, row):
    """What verl's ``AgentLoopWorker._run_agent_loop`` does: the registry entry of the
    module that ``VERL_USE_EXTERNAL_MODULES`` imports, built by ``hydra.utils.instantiate``
    with the trainer config, then ``run(sampling_params, **row)`` awaited."""
    import asyncio

    import hydra
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry
    from verl.utils.dataset.rl_dataset import RLHFDataset

    importlib.import_module(verl_engine.AGENT_LOOP_MODULE)
    rollout = config.actor_rollout_ref.rollout
    sampling = dict(
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        top_k=rollout.top_k,
        repetition_penalty=1.0,
        logprobs=rollout.calculate_log_probs,
    )  # AgentLoopWorker's

    async def go():
        loop = hydra.utils.instantiate(
            config=_agent_loop_registry[name],
            trainer_config=DictConfigWrap(config=config),
            server_manager=server,
            tokenizer=tokenizer,
            processor=None,
            hf_model_type=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
            tools=ToolListWrap([]),
        )
        return loop, await loop.run(dict(sampling), **row)

    return asyncio.run(go())


def _row(question, answer):
    """A dataset row as the agent loop receives it (RLHFDataset's fields plus the uid)."""
    return {
        "raw_prompt": [{"role": "user", "content": question}],
        "data_source": "synthetic",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"question": question},
        "uid": "u0",
        "session_id": 0,
        "index": 0,
    }


@pytest.fixture(scope="module")
def tok(task_files):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(task_files["model"])


def test_agent_loops_register_in_verls_registry():
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

    importlib.import_module(verl_engine.AGENT_LOOP_MODULE)
    assert (
        _agent_loop_registry["self_correction"]["_target_"] == "pipeline.train.verl_agent_loop.SelfCorrectionAgentLoop"
    )
    assert _agent_loop_registry["progress"]["_target_"] == "pipeline.train.verl_agent_loop.ProgressAgentLoop"


def test_self_correction_agent_loop_run_as_verl_runs_it(composed, tok):
    """Wrong then right: two outputs, the second prompt is the conversation with the first
    attempt and the instruction, the stage-2 reward with the bonus; right then wrong gives
    the negative; a long attempt is cut at verl's response_length."""
    from pipeline.models.policy import encode_prompt

    config = composed["self_correction"]
    assert config.actor_rollout_ref.rollout.response_length == 64
    instruction = config.algorithm.pipeline.self_correction.instruction
    enc = lambda t: tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]  # noqa: E731
    wrong, right = "2 + 3 = 6\nThe answer is \\boxed{6}.", "2 + 3 = 5\nThe answer is \\boxed{5}."
    row = _row("What is 2 + 3?", "5")
    server = ScriptedServer([enc(wrong), enc(right)])
    loop, outputs = run_agent_loop(config, "self_correction", tok, server, row)
    assert type(loop).__name__ == "SelfCorrectionAgentLoop" and loop.server_manager is server
    assert len(outputs) == 2 and len(server.calls) == 2
    one, two = outputs
    prompt = encode_prompt(tok, row["raw_prompt"])
    assert server.calls[0][0] == one.prompt_ids == prompt
    assert server.calls[1][0] == two.prompt_ids
    assert server.calls[0][1]["temperature"] == config.actor_rollout_ref.rollout.temperature
    text = tok.decode(two.prompt_ids)
    assert text.startswith(tok.decode(prompt)) and wrong in text and text.index(wrong) < text.index(instruction)
    assert text.endswith("<|assistant|>") and text.count("<|user|>") == 2
    assert one.response_ids == enc(wrong) and two.response_ids == enc(right)
    assert one.response_mask == [1] * len(enc(wrong)) and two.response_mask == [1] * len(enc(right))
    assert (one.num_turns, two.num_turns) == (2, 4)
    # stage 2 with outcome 1/-1 and bonus 5: each output its own target, its attempt number packed on its first
    # token: y1 (wrong) -1, y2 (right) r(y2) + 5 c2 = 6; the logged score is SCoRe's r(y2) + 5 (c2 - c1) = 6
    assert (
        one.extra_fields["reward_extra_info"]
        == two.extra_fields["reward_extra_info"]
        == {"score": 6.0, "acc": 1.0, "acc_t1": 0.0}
    )
    n1, n2 = len(enc(wrong)), len(enc(right))
    assert one.as_dict()["rm_scores"].tolist() == [1.0] + [0.0] * (n1 - 2) + [-2.0]
    assert two.as_dict()["rm_scores"].tolist() == [2.0] + [0.0] * (n2 - 2) + [4.0]
    one.reward_score = two.reward_score  # what verl's TQ postprocess does: the packed rm_scores stay
    assert one.as_dict()["rm_scores"].sum() == -1.0
    # right then wrong: y1 +1, y2 -1 (the flip's -5 is fixed once y1 is drawn), SCoRe's score -1 - 5
    _, (one, two) = run_agent_loop(config, "self_correction", tok, ScriptedServer([enc(right), enc(wrong)]), row)
    assert float(one.as_dict()["rm_scores"].sum()) == 1.0 and float(two.as_dict()["rm_scores"].sum()) == -1.0
    assert two.extra_fields["reward_extra_info"] == {"score": -6.0, "acc": 0.0, "acc_t1": 1.0}
    # a first attempt longer than response_length is cut there, in the output and in the second prompt
    long = enc(" ".join(["2 + 3 = 5"] * 40) + "\nThe answer is \\boxed{5}.")
    assert len(long) > 64
    server = ScriptedServer([long, enc(right)])
    _, (one, two) = run_agent_loop(config, "self_correction", tok, server, row)
    assert one.response_ids == long[:64] and one.response_mask == [1] * 64
    assert tok.decode(long[:64], skip_special_tokens=True) in tok.decode(two.prompt_ids)
    assert "boxed{5}" not in tok.decode(two.prompt_ids)  # the cut attempt never reached its answer
    assert two.extra_fields["reward_extra_info"]["score"] == 1.0 + 5.0  # the cut attempt has no answer: wrong, right


def _two_attempt_batch(c1, c2, sessions, alpha, stage=2):
    """The v1 trainer's batch at the advantage step for self-correction rollouts: for each
    (uid, session) the two outputs the agent loop returns, under verl's keys
    ``{uid}_{session}_{index}``, their rm_scores packed as the agent loop packs them."""
    from verl import DataProto

    from pipeline.config import SelfCorrectionConfig
    from pipeline.train.verl_plugin import pack_attempt_rewards
    from rewards.self_correction import attempt_targets

    sc = SelfCorrectionConfig(enabled=True, stage=stage, bonus=alpha)
    outcome = {"correct": 1.0, "incorrect": 0.0}
    rows, keys, uids, width = [], [], [], 6
    for (uid, session), a, b in zip(sessions, c1, c2):
        for i, (attempt, target) in enumerate(zip((1, 2), attempt_targets(sc, bool(a), bool(b), outcome))):
            rows.append(pack_attempt_rewards(target, attempt, width))
            keys.append(f"{uid}_{session}_{i}")
            uids.append(uid)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": torch.tensor(rows), "response_mask": torch.ones(len(rows), width)},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    return data, keys


def test_self_correction_credit_per_attempt_through_verls_multi_output_dispatch(composed):
    """SCoRe stage 2 (alpha 10, outcome 1/0) through the v1 trainer's own
    ``compute_advantage_for_multi_trajectories``: a right first attempt is pushed up, a
    wrong one down, the second attempt is judged against the prompt's other second
    attempts, exactly as the local engine's attempt_advantages does. verl's GRPO on the
    rollout's single reward (what the loop returned before) pushes a right first attempt
    down whenever its second attempt broke it."""
    import copy

    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    from pipeline.config import SelfCorrectionConfig
    from pipeline.train.algorithms import attempt_advantages
    from pipeline.train.config import AlgorithmConfig
    from rewards.self_correction import attempt_targets

    importlib.import_module(verl_engine.PLUGIN_MODULE)
    algo = composed["self_correction"].algorithm
    algo.pipeline.self_correction.bonus = 10.0
    sessions = [("p", s) for s in range(4)] + [("q", s) for s in range(4)]
    c1 = [1, 1, 0, 0, 1, 0, 0, 0]
    c2 = [1, 0, 1, 0, 1, 1, 0, 0]
    data, keys = _two_attempt_batch(c1, c2, sessions, alpha=10.0)
    out = compute_advantage_for_multi_trajectories(
        copy.deepcopy(data),
        batch_keys=keys,
        adv_estimator=algo.adv_estimator,
        num_repeat=4,
        norm_adv_by_std_in_grpo=algo.norm_adv_by_std_in_grpo,
        config=algo,
    )
    adv = out.batch["advantages"][:, 0].view(8, 2)  # (rollout, attempt)
    first, second = adv[:, 0], adv[:, 1]
    assert (first[[0, 1, 4]] > 0).all() and (first[[2, 3, 5, 6, 7]] < 0).all()  # each first attempt by its own verdict
    assert first[1] == first[0]  # the right first attempt whose second attempt broke it is still right
    assert (second[[0, 2, 4, 5]] > 0).all() and (second[[1, 3, 6, 7]] < 0).all()
    # the local engine's function on the same targets and groups
    sc = SelfCorrectionConfig(enabled=True, stage=2, bonus=10.0)
    t = np.array([attempt_targets(sc, bool(a), bool(b), {"correct": 1.0, "incorrect": 0.0}) for a, b in zip(c1, c2)])
    local = attempt_advantages(
        sc,
        AlgorithmConfig(adv_estimator="grpo"),
        np.r_[t[:, 0], t[:, 1]],
        np.repeat([1, 2], 8),
        [u for u, _ in sessions] * 2,
        torch.ones(16, 6),
    )[:, 0]
    torch.testing.assert_close(adv.T.reshape(-1), local)
    # before: one reward per rollout, r(y2) + 10 (c2 - c1), on verl's GRPO over final outputs, broadcast to both
    shaped = [b + 10.0 * (b - a) for a, b in zip(c1, c2)]
    old = _rollout_batch([0] * 16, [6] * 16, [u for u, _ in sessions for _ in (1, 2)], 6)
    old.batch["token_level_rewards"][:, -1] = torch.tensor([r for r in shaped for _ in (1, 2)])
    before = compute_advantage_for_multi_trajectories(
        old, batch_keys=keys, adv_estimator="grpo", num_repeat=4, norm_adv_by_std_in_grpo=True, config=algo
    )
    assert before.batch["advantages"][2, 0] < 0  # rollout 1's right first attempt, trained to be wrong
    assert before.batch["advantages"][4, 0] > 0  # rollout 2's wrong first attempt, trained to be right


def test_self_correction_estimator_refuses_unmarked_rewards(composed):
    from pipeline.train.verl_plugin import self_correction_advantage

    b = _rollout_batch([1, 0], [3, 4], ["a", "a"], 8)  # plain verdicts: no attempt markers
    with pytest.raises(ValueError, match="self_correction agent loop"):
        self_correction_advantage(
            b.batch["token_level_rewards"],
            b.batch["response_mask"],
            np.array(["a", "a"]),
            composed["self_correction"].algorithm,
        )


# ----------------------------------------------------------------------------- process rewards on verl


def _progress_config(**progress):
    cfg = launch_for(
        "progress",
        rollout={"max_new_tokens": 96},
        reward={"terms": {"outcome": {"weight": 1.0}}},
        progress={"split": "lines", "mode": "continue", "alpha": 1.0, "temperature": 1.0, **progress},
    )
    return verl_engine.validate(cfg)


def test_progress_agent_loop_prover_through_the_server_manager(tok):
    """The policy-as-prover on the rollout servers: 64 continuations per step prefix, each
    from prompt + prefix with the budget left; right steps gain, the slipped step loses,
    and the bonus sits on each step's tokens, packed with the verdict into rm_scores."""
    from pipeline.models.prover import StepSegmenter
    from pipeline.train.verl_plugin import unpack_token_bonus
    from tests.arithmetic_prover import ArithmeticProver, slip_traces

    config = _progress_config(mc_rollouts=64, prover_k=1)
    p, prompt, good, flawed = slip_traces(tok)
    row = _row(p.question, p.answer)
    steps = StepSegmenter(load_config(TrainConfig, CONFIGS["progress"], {"progress": {"split": "lines"}}).progress, tok)
    results = {}
    for name, response in (("good", good), ("flawed", flawed)):
        server = ScriptedServer([response], ArithmeticProver(tok, slip=0.25, seed=0))
        _, out = run_agent_loop(config, "progress", tok, server, row)
        ends = steps(response)
        assert len(ends) == 4  # three computation lines and the answer line
        # prover requests: 64 per prefix (before each step), all through the same server manager
        prover_calls = server.calls[1:]
        assert len(prover_calls) == 4 * 64
        for j, (ids, params) in enumerate(prover_calls):
            cut = [0, *ends][j // 64]
            assert ids == prompt + response[:cut] and params["max_tokens"] == 96 - cut
            assert params["temperature"] == 1.0 and params["logprobs"] is False
        assert out.response_ids == response and out.response_mask == [1] * len(response)
        rm = out.as_dict()["rm_scores"]  # what verl's v1 trainer stores as the rollout's rm_scores
        assert rm.shape == (len(response),) and rm.tolist() == pytest.approx(out.token_rewards)
        info = out.extra_fields["reward_extra_info"]
        assert info["mc_rollouts"] == 256 and info["progress_steps"] == 4.0
        bonus = unpack_token_bonus(rm[None], torch.ones(1, len(response)))[0]
        per_step = [bonus[s:e] for s, e in zip([0, *ends], ends)]
        for b in per_step:
            assert torch.allclose(b, b[0].expand_as(b))  # one value per step
        results[name] = (float(rm.sum()), [float(b[0]) for b in per_step])
    # the right trace: each right step raises the prover's chance ((1 - slip) ** remaining)
    total, prog = results["good"]
    assert (
        total == pytest.approx(1.0)
        and all(x > 0 for x in prog[:3])
        and sum(prog) == pytest.approx(1 - 0.75**3, abs=0.17)
    )
    # the flawed trace: step 1 fine, step 2 slips (about -(1 - slip)), the verdict is 0
    total, prog = results["flawed"]
    assert total == pytest.approx(0.0, abs=1e-6)
    assert prog[0] > 0 and prog[1] < -0.5 and int(np.argmin(prog)) == 1


def test_progress_agent_loop_answer_now_mode(tok):
    """answer_now (MRT): each prefix gets the answer cue and answer_tokens of budget; the
    arithmetic prover answers the last value written, right only after the last step."""
    from pipeline.train.verl_plugin import unpack_token_bonus
    from tests.arithmetic_prover import ArithmeticProver, slip_traces

    config = _progress_config(
        mode="answer_now", mc_rollouts=2, prover_k=1, answer_now_text="\nThe answer is \\boxed{", answer_tokens=16
    )
    p, prompt, good, _ = slip_traces(tok)
    row = _row(p.question, p.answer)
    server = ScriptedServer([good], ArithmeticProver(tok, slip=0.0))
    _, out = run_agent_loop(config, "progress", tok, server, row)
    forced = tok("\nThe answer is \\boxed{", add_special_tokens=False)["input_ids"]
    assert len(server.calls) == 1 + 4 * 2
    for ids, params in server.calls[1:]:
        assert ids[: len(prompt)] == prompt and ids[-len(forced) :] == forced and params["max_tokens"] == 16
    bonus = unpack_token_bonus(out.as_dict()["rm_scores"][None], torch.ones(1, len(good)))[0]
    # values 0, 0, 0, 1, 1: only the step that computes the answer has progress (alpha 1)
    ends = sorted({i for i in range(1, len(good)) if bonus[i] != bonus[i - 1]})
    assert len(ends) == 2 and float(bonus[ends[0]]) == 1.0 and float(bonus[0]) == 0.0 and float(bonus[-1]) == 0.0


def _packed_batch(verdicts, bonuses, uids, width):
    """The v1 trainer's batch at the advantage step: each row's rm_scores (the agent loop's
    packed token rewards) right-padded to the batch width, as ``to_padded_tensor`` gives."""
    from verl import DataProto

    from pipeline.train.verl_plugin import pack_token_rewards

    rewards = torch.zeros(len(verdicts), width)
    mask = torch.zeros(len(verdicts), width)
    for i, (v, b) in enumerate(zip(verdicts, bonuses)):
        rewards[i, : len(b)] = pack_token_rewards(v, b)
        mask[i, : len(b)] = 1
    return DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )


def test_progress_estimator_matches_the_local_engine(composed):
    """pipeline_progress through verl's dispatch on a real DataProto equals the local
    engine's compute_advantages(..., token_bonus=bonus) for the same verdicts and bonuses
    (terms composed from the verdicts: outcome and the length penalty of the config)."""
    importlib.import_module(verl_engine.PLUGIN_MODULE)
    from pipeline.train import algorithms
    from rewards.progress import progress_bonus
    from rewards.terms import RolloutScores, compose

    algo = composed["progress"].algorithm
    assert algo.adv_estimator == "pipeline_progress" and algo.use_kl_in_reward is False
    rng = np.random.default_rng(0)
    verdicts = [1, 0, 1, 1, 0, 0, 1, 0]
    lengths = [40, 128, 17, 90, 60, 128, 33, 70]
    uids = ["a"] * 4 + ["b"] * 4
    bonuses = []
    for n in lengths:  # steps of 3 tokens or more, progress in [-1, 1], alpha 0.5
        ends = sorted(set(rng.choice(np.arange(3, n - 3), size=3, replace=False).tolist())) + [n]
        bonuses.append(progress_bonus(ends, rng.uniform(-1, 1, len(ends)), n, alpha=0.5))
    data = compute_advantage(
        _packed_batch(verdicts, bonuses, uids, 128),
        adv_estimator=algo.adv_estimator,
        norm_adv_by_std_in_grpo=algo.norm_adv_by_std_in_grpo,
        config=algo,
    )

    cfg = load_config(TrainConfig, CONFIGS["progress"])
    batch = RolloutScores(
        correct=np.array(verdicts, bool),
        response_length=lengths,
        group=np.array(uids),
        group_size=4,
        max_response_length=128,
        truncated=np.array(lengths) >= 128,
    )
    total, parts = compose(batch, cfg.reward.terms)
    assert (parts["length"] < 0).all()
    bonus = torch.zeros(8, 128)
    for i, b in enumerate(bonuses):
        bonus[i, : len(b)] = torch.as_tensor(b)
    mask = data.batch["response_mask"]
    expected = algorithms.compute_advantages(cfg.algorithm, total, mask, np.array(uids), token_bonus=bonus)
    torch.testing.assert_close(data.batch["advantages"], expected)
    # without the bonus it is the terms estimator: the bonus is what differs, token by token
    plain = algorithms.compute_advantages(cfg.algorithm, total, mask, np.array(uids))
    torch.testing.assert_close(data.batch["advantages"] - plain, bonus * mask)


def test_packed_token_rewards_convention():
    """Rows sum to the verdict; the last token's bonus is not sent and reads as the previous
    token's (exact unless the last step is one token); one-token rows carry no bonus."""
    from pipeline.train.verl_plugin import pack_token_rewards, progress_advantage, unpack_token_bonus

    packed = pack_token_rewards(1.0, [0.25, 0.25, -0.5, -0.5])
    assert packed.tolist() == [0.25, 0.25, -0.5, 1.0] and float(packed.sum()) == 1.0
    data = _packed_batch([1, 0, 1], [[0.25, 0.25, -0.5, -0.5], [0.3, 0.3, 0.7], [0.9]], ["a", "a", "a"], 5)
    bonus = unpack_token_bonus(data.batch["token_level_rewards"], data.batch["response_mask"])
    torch.testing.assert_close(
        bonus, torch.tensor([[0.25, 0.25, -0.5, -0.5, 0.0], [0.3, 0.3, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    )  # row 2: a 1-token last step
    from omegaconf import OmegaConf

    algo = OmegaConf.create({"use_kl_in_reward": True, "pipeline": {}})
    with pytest.raises(ValueError, match="use_kl_in_reward"):
        progress_advantage(
            data.batch["token_level_rewards"], data.batch["response_mask"], data.non_tensor_batch["uid"], algo
        )


def test_progress_translation(composed):
    pr = composed["progress"]
    p = pr.algorithm.pipeline
    assert pr.algorithm.adv_estimator == "pipeline_progress" and pr.algorithm.use_kl_in_reward is False
    assert pr.actor_rollout_ref.rollout.agent.default_agent_loop == "progress" and pr.trainer.use_v1 is True
    assert p.base_estimator == "grpo" and p.group_size == 4 and p.max_response_length == 128
    assert dict(p.terms.length) == {"weight": 0.1}
    cfg = load_config(TrainConfig, CONFIGS["progress"]).progress
    for key in verl_engine.PROGRESS_KEYS:  # every setting the agent loop reads arrives intact
        value = p.progress[key]
        assert (list(value) if key == "markers" else value) == getattr(cfg, key), key
    assert p.progress.answer_now_text == "\nThe answer is \\boxed{"
    assert "correct_score" not in pr.reward.custom_reward_function.reward_kwargs  # verdicts 1/0 for the estimator
