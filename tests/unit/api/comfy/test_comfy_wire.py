"""ComfyUI's 400 answer to POST /prompt, shaped from a `PromptRejected` (`api/comfy/wire.prompt_rejected`)."""

from __future__ import annotations

from sdfleet.api.comfy.wire import prompt_rejected
from sdfleet.services.comfy import InputProblem, PromptRejected, RejectedNode


def test_node_problems_answer_prompt_outputs_failed_validation_per_node():
    rejected = PromptRejected("invalid", nodes={"3": RejectedNode(
        class_type="KSampler", problems=[InputProblem("value_smaller_than_min", "steps must be at least 1", "steps")],
        dependent_outputs=["9"])})
    body = prompt_rejected(rejected)
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"] == {"3": {
        "errors": [{"type": "value_smaller_than_min", "message": "steps must be at least 1", "details": "steps",
                    "extra_info": {"input_name": "steps"}}],
        "dependent_outputs": ["9"], "class_type": "KSampler"}}


def test_a_prompt_refused_as_a_whole_has_no_node_errors():
    body = prompt_rejected(PromptRejected("no prompt: `prompt` must be an API-format graph object"))
    assert body == {"error": {"type": "invalid_prompt", "message": "no prompt: `prompt` must be an API-format graph "
                              "object", "details": "no prompt: `prompt` must be an API-format graph object",
                              "extra_info": {}}, "node_errors": {}}
