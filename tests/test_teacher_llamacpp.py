"""The embedded llamacpp backend, in-process: Gemma 3 270M (completion), SmolLM2 (chat, schema)."""

from __future__ import annotations

import asyncio
import json

import pytest

from synthkd.errors import SynthkdError
from synthkd.generators.teachers import SamplingParams, TeacherRequest, teacher_from_spec

# One llama.cpp thread: results do not depend on it, and a busy 2-core machine (CI, other
# jobs) makes multi-threaded llama.cpp spin rather than compute.
ONE_THREAD = {"n_threads": 1}
SENTIMENT_HEADER = (
    "Label each review as positive or negative.\n\n"
    "Review: I loved it, a wonderful film!\nSentiment: positive\n\n"
    "Review: Terrible, boring and far too long.\nSentiment: negative\n\n"
    "Review: The best evening I have had in years.\nSentiment: positive\n\n"
)


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    teacher = teacher_from_spec(
        None, cache_path=tmp_path_factory.mktemp("gemma") / "c.sqlite", **ONE_THREAD
    )
    yield teacher
    asyncio.run(teacher.aclose())


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    teacher = teacher_from_spec(
        "llamacpp:smollm2-135m-instruct",
        cache_path=tmp_path_factory.mktemp("smol") / "c.sqlite",
        **ONE_THREAD,
    )
    yield teacher
    asyncio.run(teacher.aclose())


def test_gemma_completions_come_back_with_usage_and_a_rerun_is_free(gemma):
    request = TeacherRequest(
        prompt="Three facts about the Moon:\n1.",
        n=3,
        params=SamplingParams(seed=1, max_tokens=12, stop=("\n",)),
    )
    (response,) = asyncio.run(gemma.generate([request]))
    assert [c.index for c in response.completions] == [0, 1, 2] and not response.errors
    assert all(
        c.finish_reason in ("stop", "length") and c.completion_tokens > 0
        for c in response.completions
    )
    assert all("\n" not in c.text for c in response.completions)  # stop string honoured
    assert len({c.text for c in response.completions}) > 1  # seed + index: samples differ
    assert gemma.model == "gemma-3-270m" and gemma.backend == "llamacpp"
    calls = gemma.usage.requests
    (again,) = asyncio.run(gemma.generate([request]))
    assert gemma.usage.requests == calls  # no teacher call the second time
    assert [c.text for c in again.completions] == [c.text for c in response.completions]
    assert all(c.cached for c in again.completions)


def test_gemma_samples_replay_exactly_without_the_cache(tmp_path):
    request = TeacherRequest(
        prompt="A short poem about rain:\n", n=2, params=SamplingParams(seed=42, max_tokens=10)
    )

    async def twice():
        teacher = teacher_from_spec(None, cache=False, **ONE_THREAD)
        try:
            first = await teacher.generate([request])
            second = await teacher.generate([request])
        finally:
            await teacher.aclose()
        return first[0], second[0]

    first, second = asyncio.run(twice())
    assert [c.text for c in first.completions] == [c.text for c in second.completions]


def test_label_distribution_sums_to_one_and_picks_obvious_labels(gemma):
    texts = [
        "Review: An absolute delight, I smiled the whole time.",
        "Review: Awful. I want my money back.",
    ]
    dists = asyncio.run(
        gemma.label_distribution(SENTIMENT_HEADER, texts, ["positive", "negative"], "\nSentiment:")
    )
    assert all(
        abs(sum(d.values()) - 1) < 1e-9 and set(d) == {"positive", "negative"} for d in dists
    )
    assert max(dists[0], key=dists[0].get) == "positive"
    assert max(dists[1], key=dists[1].get) == "negative"


def test_multi_token_labels_are_scored_whole(gemma):
    labels = ["very positive", "very negative", "neutral"]
    (dist,) = asyncio.run(
        gemma.label_distribution(
            "Rate each text.\n\nText: I adore this!\nRating: very positive\n\n",
            ["Text: This is the worst thing ever, I hate it."],
            labels,
            "\nRating:",
        )
    )
    assert abs(sum(dist.values()) - 1) < 1e-9 and set(dist) == set(labels)


def test_smollm2_chat_output_follows_the_json_schema(smollm2):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    request = TeacherRequest(
        messages=({"role": "user", "content": "Name a big city and its country, as JSON."},),
        n=2,
        json_schema=schema,
        params=SamplingParams(seed=3, max_tokens=48),
    )
    (response,) = asyncio.run(smollm2.generate([request]))
    assert len(response.completions) == 2
    for completion in response.completions:
        assert completion.ok
        value = json.loads(completion.text)
        assert isinstance(value["city"], str) and isinstance(value["country"], str)


def test_a_prompt_too_long_for_the_context_is_reported_not_raised(tmp_path):
    async def run():
        teacher = teacher_from_spec(
            "llamacpp:smollm2-135m-instruct", cache=False, n_ctx=64, **ONE_THREAD
        )
        try:
            return await teacher.generate(
                [TeacherRequest(prompt="word " * 200, n=2, params=SamplingParams(max_tokens=8))]
            )
        finally:
            await teacher.aclose()

    (response,) = asyncio.run(run())
    assert not response.completions and len(response.errors) == 2
    assert "n_ctx" in response.errors[0].reason or "context" in response.errors[0].reason


def test_bad_model_files_are_one_line_errors(tmp_path):
    with pytest.raises(SynthkdError, match="does not exist"):
        teacher_from_spec(f"llamacpp:{tmp_path / 'missing.gguf'}")
    with pytest.raises(SynthkdError, match="unknown llamacpp model"):
        teacher_from_spec("llamacpp:llama-70b")
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    teacher = teacher_from_spec(f"llamacpp:{junk}", cache=False)
    with pytest.raises(SynthkdError, match="cannot load the model file"):
        asyncio.run(teacher.generate([TeacherRequest(prompt="hi")]))
