from sdfleet.services.credentials import (
    API_KEY_PREFIX,
    HashingCost,
    PasswordHasher,
    new_token,
    token_hash,
    visible_prefix,
)


def test_argon2id_hash_verifies_and_rejects():
    hasher = PasswordHasher(HashingCost(time_cost=1, memory_kib=1024, parallelism=1))
    h = hasher.hash("correct horse")
    assert h.startswith("$argon2id$")
    assert hasher.verify(h, "correct horse")
    assert not hasher.verify(h, "wrong horse")
    assert not hasher.verify(None, "anything")
    assert not hasher.verify("not-a-hash", "x")


def test_tokens_are_random_and_hashed():
    a, b = new_token(API_KEY_PREFIX), new_token(API_KEY_PREFIX)
    assert a != b and a.startswith("sfk_") and len(a) > 40
    assert token_hash(a) != a and len(token_hash(a)) == 64
    assert visible_prefix(a) == a[:12]
