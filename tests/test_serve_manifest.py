"""The Serve config and the KubeRay manifest that embeds it: valid for Ray Serve, and the same tier."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "serve" / "config.yaml"
MANIFEST = ROOT / "deploy" / "kuberay-rayservice.yaml"

schema = pytest.importorskip("ray.serve.schema")


def _config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def _embedded() -> dict:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    return yaml.safe_load(manifest["spec"]["serveConfigV2"])


def test_the_serve_config_is_a_valid_ray_serve_deploy_config():
    parsed = schema.ServeDeploySchema.model_validate(_config())
    (application,) = parsed.applications
    names = [d.name for d in application.deployments]
    assert names == ["ingress", "kokoro", "qwen-custom", "qwen-clone", "qwen-design"]


def test_the_serve_config_names_every_engine_of_the_registry():
    from engines.runtime import registry

    (application,) = _config()["applications"]
    assert application["args"]["engines"] == list(registry.ENGINES)


def test_qwen_replicas_take_a_batch_of_requests_and_kokoro_one_at_a_time():
    from engines.qwen.engine import BATCH_SIZE

    deployments = {d["name"]: d for d in _config()["applications"][0]["deployments"]}
    assert deployments["kokoro"]["max_ongoing_requests"] == 1
    assert deployments["qwen-custom"]["max_ongoing_requests"] == BATCH_SIZE
    assert deployments["qwen-clone"]["max_ongoing_requests"] == BATCH_SIZE
    for name in ("kokoro", "qwen-custom", "qwen-clone", "qwen-design"):
        actor = deployments[name]["ray_actor_options"]
        assert 0 < actor["num_cpus"] < 1 and 0 < actor["num_gpus"] < 1  # fractional: replicas share a machine
        bounds = deployments[name]["autoscaling_config"]
        assert bounds["min_replicas"] <= bounds["initial_replicas"] <= bounds["max_replicas"]
        assert deployments[name]["health_check_period_s"] > 0


def test_the_kuberay_manifest_embeds_the_same_deployments_and_options():
    assert _embedded() == _config()
    schema.ServeDeploySchema.model_validate(_embedded())
