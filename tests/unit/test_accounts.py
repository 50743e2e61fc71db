"""Dashboard accounts on a real store: how passwords are kept, and how long sessions live."""

from __future__ import annotations

import pytest

from eventyard.clock import FrozenClock
from eventyard.errors import Conflict, InvalidRequest, TooManyRequests, Unauthenticated
from eventyard.services.accounts import (
    FAILURE_WAIT_SECONDS,
    FREE_FAILURES,
    MIN_PASSWORD_LENGTH,
    AccountService,
)
from eventyard.store import Store

pytestmark = pytest.mark.anyio

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def accounts(store: Store, clock: FrozenClock) -> AccountService:
    return AccountService(store, clock, session_hours=12)


async def _stored_hash(store: Store, email: str) -> str:
    row = await store.read(
        lambda db: db.one("SELECT password_hash FROM dashboard_users WHERE email = ?", (email,))
    )
    assert row is not None
    value: str = row["password_hash"]
    return value


async def test_the_password_is_stored_as_an_argon2id_hash_never_as_itself(
    accounts: AccountService, store: Store
) -> None:
    user = await accounts.create_user(EMAIL, PASSWORD)
    assert user.email == EMAIL
    assert user.id.startswith("usr_")
    stored = await _stored_hash(store, EMAIL)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    # Two users with the same password get different hashes (a salt per hash).
    await accounts.create_user("grace@example.com", PASSWORD)
    assert await _stored_hash(store, "grace@example.com") != stored
    # Nothing else in the table holds the password either.
    rows = await store.read(lambda db: db.all("SELECT * FROM dashboard_users"))
    assert not any(PASSWORD in str(value) for row in rows for value in dict(row).values())


async def test_the_right_password_signs_in_and_a_wrong_one_or_email_does_not(
    accounts: AccountService,
) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    new = await accounts.sign_in(EMAIL, PASSWORD)
    assert new.session.user.email == EMAIL
    found = await accounts.session(new.token)
    assert found is not None
    assert found.user.email == EMAIL
    assert found.csrf_token == new.session.csrf_token
    # The email is matched case-insensitively, and surrounding spaces are ignored.
    assert (await accounts.sign_in("  ADA@example.com ", PASSWORD)).session.user.email == EMAIL
    with pytest.raises(Unauthenticated) as wrong_password:
        await accounts.sign_in(EMAIL, PASSWORD + "!")
    with pytest.raises(Unauthenticated) as wrong_email:
        await accounts.sign_in("nobody@example.com", PASSWORD)
    # One message for both: it does not tell which emails exist.
    assert wrong_password.value.message == wrong_email.value.message


async def test_the_session_token_itself_is_not_stored(
    accounts: AccountService, store: Store
) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    new = await accounts.sign_in(EMAIL, PASSWORD)
    rows = await store.read(lambda db: db.all("SELECT * FROM dashboard_sessions"))
    assert len(rows) == 1
    assert not any(new.token in str(value) for value in dict(rows[0]).values())


async def test_a_short_password_is_refused_with_the_limit_in_the_message(
    accounts: AccountService, store: Store
) -> None:
    short = "x" * (MIN_PASSWORD_LENGTH - 1)
    with pytest.raises(InvalidRequest) as refused:
        await accounts.create_user(EMAIL, short)
    assert str(MIN_PASSWORD_LENGTH) in refused.value.message
    assert await store.read(lambda db: db.all("SELECT id FROM dashboard_users")) == []
    # Exactly the minimum is enough.
    await accounts.create_user(EMAIL, "y" * MIN_PASSWORD_LENGTH)


async def test_an_address_that_is_not_an_email_is_refused(accounts: AccountService) -> None:
    with pytest.raises(InvalidRequest):
        await accounts.create_user("not-an-email", PASSWORD)


async def test_a_second_user_with_the_same_email_is_a_409(accounts: AccountService) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    with pytest.raises(Conflict) as duplicate:
        await accounts.create_user(EMAIL, "another password here")
    assert duplicate.value.status == 409
    assert EMAIL in duplicate.value.message
    # Another case is the same address.
    with pytest.raises(Conflict):
        await accounts.create_user(EMAIL.upper(), PASSWORD)


async def test_a_session_expires_after_session_hours(
    accounts: AccountService, clock: FrozenClock
) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    new = await accounts.sign_in(EMAIL, PASSWORD)
    assert new.session.expires_at == clock.now_us() + 12 * 3600 * 1_000_000
    clock.advance(12 * 3600 - 1)
    assert await accounts.session(new.token) is not None
    clock.advance(1)
    assert await accounts.session(new.token) is None


async def test_signing_out_ends_only_that_session(accounts: AccountService) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    first = await accounts.sign_in(EMAIL, PASSWORD)
    second = await accounts.sign_in(EMAIL, PASSWORD)
    assert first.token != second.token
    assert first.session.csrf_token != second.session.csrf_token
    await accounts.sign_out(first.token)
    assert await accounts.session(first.token) is None
    assert await accounts.session(second.token) is not None


async def test_unknown_and_empty_tokens_have_no_session(accounts: AccountService) -> None:
    assert await accounts.session(None) is None
    assert await accounts.session("") is None
    assert await accounts.session("not-a-token") is None


async def test_set_password_signs_out_every_session_and_the_old_password_stops_working(
    accounts: AccountService, store: Store
) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    before = await _stored_hash(store, EMAIL)
    sessions = [await accounts.sign_in(EMAIL, PASSWORD) for _ in range(2)]
    await accounts.set_password(EMAIL, "a brand new password")
    for new in sessions:
        assert await accounts.session(new.token) is None
    assert await _stored_hash(store, EMAIL) != before
    with pytest.raises(Unauthenticated):
        await accounts.sign_in(EMAIL, PASSWORD)
    assert (await accounts.sign_in(EMAIL, "a brand new password")).session.user.email == EMAIL


async def test_set_password_checks_the_rules_and_the_user(accounts: AccountService) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    kept = await accounts.sign_in(EMAIL, PASSWORD)
    with pytest.raises(InvalidRequest) as short:
        await accounts.set_password(EMAIL, "short")
    assert str(MIN_PASSWORD_LENGTH) in short.value.message
    assert await accounts.session(kept.token) is not None  # a refused change signs no one out
    with pytest.raises(InvalidRequest):
        await accounts.set_password("nobody@example.com", "long enough password")


async def test_after_five_wrong_passwords_the_email_waits_between_tries(
    accounts: AccountService, clock: FrozenClock
) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    for _ in range(FREE_FAILURES):
        with pytest.raises(Unauthenticated):
            await accounts.sign_in(EMAIL, "wrong password")
    # Even the right password waits now: the refusal says how long, and so does Retry-After.
    with pytest.raises(TooManyRequests) as waiting:
        await accounts.sign_in(EMAIL, PASSWORD)
    assert waiting.value.status == 429
    retry_after = int(waiting.value.headers["Retry-After"])
    assert retry_after == FAILURE_WAIT_SECONDS  # the clock stands still: exactly the wait
    assert f"wait {retry_after} s" in waiting.value.message
    clock.advance(FAILURE_WAIT_SECONDS - 1)
    with pytest.raises(TooManyRequests):
        await accounts.sign_in(EMAIL, PASSWORD)
    # Another email is not held up.
    await accounts.create_user("grace@example.com", PASSWORD)
    await accounts.sign_in("grace@example.com", PASSWORD)
    clock.advance(1)
    new = await accounts.sign_in(EMAIL, PASSWORD)
    assert new.session.user.email == EMAIL
    # A success clears the count: the next wrong password is refused, not held up.
    with pytest.raises(Unauthenticated):
        await accounts.sign_in(EMAIL, "wrong password")


async def test_guesses_sent_at_once_each_count_toward_the_wait(
    accounts: AccountService,
) -> None:
    import anyio

    await accounts.create_user(EMAIL, PASSWORD)
    outcomes: list[str] = []

    async def guess(n: int) -> None:
        try:
            await accounts.sign_in(EMAIL, f"wrong guess {n}")
        except Unauthenticated:
            outcomes.append("wrong")
        except TooManyRequests:
            outcomes.append("wait")

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(guess, n)
    # Only the first five are checked at all; the rest wait, and so does the right password.
    assert outcomes.count("wrong") == FREE_FAILURES
    assert outcomes.count("wait") == 12 - FREE_FAILURES
    with pytest.raises(TooManyRequests):
        await accounts.sign_in(EMAIL, PASSWORD)


async def test_emails_match_by_unicode_case_folding_on_every_database(
    accounts: AccountService,
) -> None:
    await accounts.create_user("Élodie@example.com", PASSWORD)
    new = await accounts.sign_in("éLODIE@EXAMPLE.COM", PASSWORD)
    assert new.session.user.email == "Élodie@example.com"
    with pytest.raises(Conflict):
        await accounts.create_user("élodie@example.com", PASSWORD)


async def test_an_overlong_password_is_refused_without_hashing(accounts: AccountService) -> None:
    await accounts.create_user(EMAIL, PASSWORD)
    with pytest.raises(Unauthenticated):
        await accounts.sign_in(EMAIL, PASSWORD + "x" * 300_000)
