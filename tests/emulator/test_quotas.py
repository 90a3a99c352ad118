from apigw_local.gateway.quotas import DEFAULT_QUOTAS, Quotas


def test_aws_defaults():
    q = DEFAULT_QUOTAS
    assert q.frame_bytes == 32 * 1024
    assert q.message_bytes == 128 * 1024
    assert q.idle_timeout == 600 and q.max_duration == 7200
    assert q.management_data_bytes == 128 * 1024
    assert q.websocket_max_size() == (128 * 1024, 32 * 1024)


def test_deadline_is_the_earlier_of_idle_and_duration():
    q = Quotas(idle_timeout=10, max_duration=100)
    assert q.deadline(0, 5) == (15, "idle")
    assert q.deadline(0, 95) == (100, "max_duration")
