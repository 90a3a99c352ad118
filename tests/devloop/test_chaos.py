"""Chaos policy: spec parsing, determinism, shares and the answers AWS gives."""

import json

import pytest

from apigw_local.chaos import Chaos, ChaosError, ChaosPolicy


def test_parse_reads_every_kind():
    chaos = Chaos.parse("gone=0.2, throttle=10%,latency=50-200 dynamodb=0.05,drop=0.01,"
                        "timeout=0.5,functions=Message+Connect,seed=7")
    assert chaos == Chaos(gone=0.2, throttle=0.1, latency=(50.0, 200.0), dynamodb=0.05,
                          drop=0.01, timeout=0.5, functions=frozenset({"Message", "Connect"}),
                          seed=7)
    assert Chaos.parse("latency=100ms").latency == (100.0, 100.0)
    assert Chaos.parse("dynamodb-throttle=0.5").dynamodb == 0.5
    assert Chaos.parse("gone=1", seed=3).seed == 3


@pytest.mark.parametrize("spec, message", [
    ("gone=2", "gone='2': expected a fraction from 0 to 1"),
    ("gone=lots", "expected a fraction such as 0.2 or 20%"),
    ("latency=200-50", "expected 0 <= MIN <= MAX"),
    ("latency=fast", "expected milliseconds"),
    ("explode=1", "'explode': unknown; expected one of gone, throttle"),
    ("gone", "expected NAME=VALUE"),
    ("gone=0.6,throttle=0.6", "together at most 1"),
    ("seed=x", "seed='x': expected an integer"),
])
def test_parse_errors_say_what_is_expected(spec, message):
    with pytest.raises(ChaosError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Chaos.parse(spec)


def test_coerce_accepts_the_testing_api_forms():
    assert Chaos.coerce(None) is None
    assert Chaos.coerce("gone=0.5") == Chaos(gone=0.5)
    assert Chaos.coerce({"gone": 0.5, "latency": (10, 20), "functions": ["A"]}) == Chaos(
        gone=0.5, latency=(10.0, 20.0), functions=frozenset({"A"}))
    with pytest.raises(ChaosError, match="'gonne': unknown"):
        Chaos.coerce({"gonne": 0.5})


def test_describe_round_trips():
    chaos = Chaos.parse("gone=0.25,latency=5-9,timeout=0.1,functions=B+A,seed=4")
    assert chaos.describe() == "gone=0.25,timeout=0.1,latency=5-9,functions=A+B,seed=4"
    assert Chaos.parse(chaos.describe()) == chaos
    assert Chaos().describe() == "off" and not Chaos().active


def _posts(policy, n):
    return [(policy.post_delay(), policy.post_fault()) for _ in range(n)]


def test_same_seed_same_decisions_and_kinds_are_independent():
    a = _posts(ChaosPolicy(Chaos(gone=0.3, latency=(1, 50), seed=11)), 200)
    b = _posts(ChaosPolicy(Chaos(gone=0.3, latency=(1, 50), seed=11)), 200)
    assert a == b
    c = _posts(ChaosPolicy(Chaos(gone=0.3, latency=(1, 50), seed=12)), 200)
    assert a != c
    # Adding drops (another stream, drawn in between) changes no post's fate.
    policy = ChaosPolicy(Chaos(gone=0.3, latency=(1, 50), drop=0.5, seed=11))
    mixed = []
    for _ in range(200):
        policy.on_message()
        mixed.append((policy.post_delay(), policy.post_fault()))
    assert mixed == a


def test_shares_follow_the_fractions():
    policy = ChaosPolicy(Chaos(gone=0.2, throttle=0.1, seed=1))
    faults = [policy.post_fault() for _ in range(5000)]
    gone = sum(f is not None and f.error_type == "GoneException" for f in faults)
    throttled = sum(f is not None and f.error_type == "LimitExceededException" for f in faults)
    assert 850 < gone < 1150 and 400 < throttled < 600
    assert policy.counts["gone"] == gone and policy.counts["throttle"] == throttled
    assert policy.summary() == f"gone {gone}, throttle {throttled}"


def test_answers_are_aws_errors():
    gone = ChaosPolicy(Chaos(gone=1.0)).post_fault()
    assert (gone.status, gone.error_type, gone.disconnect) == (410, "GoneException", True)
    assert json.loads(gone.body()) == {"message": None}
    throttled = ChaosPolicy(Chaos(throttle=1.0)).post_fault()
    assert (throttled.status, throttled.error_type, throttled.disconnect) == (
        429, "LimitExceededException", False)
    slow = ChaosPolicy(Chaos(latency=(20, 20)))
    assert slow.post_fault() is None and slow.post_delay() == pytest.approx(0.02)
    assert ChaosPolicy(Chaos()).post_delay() == 0


def test_timeouts_only_for_the_named_functions():
    policy = ChaosPolicy(Chaos(timeout=1.0, functions=frozenset({"Message"})))
    assert policy.on_invoke("Message") and not policy.on_invoke("Connect")
    everyone = ChaosPolicy(Chaos(timeout=1.0))
    assert everyone.on_invoke("Connect")
    assert not ChaosPolicy(Chaos()).on_invoke("Connect")


def test_unseeded_policy_reports_its_seed_for_a_rerun():
    first = ChaosPolicy(Chaos(gone=0.5))
    decisions = _posts(first, 50)
    again = ChaosPolicy(Chaos(gone=0.5, seed=first.seed))
    assert _posts(again, 50) == decisions


def test_dynamodb_throttling_is_a_real_400_that_botocore_retries():
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError, EndpointConnectionError

    from apigw_local.chaos import dynamodb_env, initialize_client_plugin

    env = dynamodb_env(Chaos(dynamodb=1.0), seed=5)
    assert env == {"APIGW_LOCAL_CHAOS_DYNAMODB": "1.0:5"}
    assert dynamodb_env(Chaos(), 5) == {}

    def client(service, attempts=3):
        return boto3.client(service, region_name="us-east-1", aws_access_key_id="x",
                            aws_secret_access_key="x", endpoint_url="http://127.0.0.1:9",
                            config=Config(retries={"mode": "standard",
                                                   "max_attempts": attempts}))

    dynamodb = client("dynamodb")
    calls = []
    dynamodb.meta.events.register("before-send.dynamodb", lambda **kw: calls.append(1))
    initialize_client_plugin(dynamodb, {**env, "AWS_LAMBDA_FUNCTION_NAME": "f"})
    with pytest.raises(ClientError) as raised:
        dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    error = raised.value.response
    assert error["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(calls) == 4  # the request and three retries: botocore backed off and retried
    other = client("sqs", attempts=1)
    initialize_client_plugin(other, env)  # not DynamoDB: untouched, the request goes out
    with pytest.raises(EndpointConnectionError):
        other.list_queues()
