"""Linking a device: the code, the relayed channel, and every way a relay or a user errs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import DeviceCertificate, DeviceListHead
from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.link_code import LinkCode
from securechat.crypto.linking import LINK_CODE_LIFETIME, LinkJoiner, LinkOffer, LinkState
from securechat.errors import LinkError

from ._support import NOW, flip_bit

ACCOUNT = AccountKeyPair.generate()
EXISTING = IdentityKeyPair.generate()


@dataclass
class Exchange:
    offer: LinkOffer
    joiner: LinkJoiner
    device: IdentityKeyPair

    def request(self, offer_message: bytes | None = None) -> bytes:
        message = self.offer.offer_message() if offer_message is None else offer_message
        return self.joiner.request_message(message, self.device, "alice", 2)

    def grant(self, request: bytes, *, device_id: int = 2) -> bytes:
        asked = self.offer.open_request(request, now=NOW + 1)
        certificate = DeviceCertificate.issue(ACCOUNT, "alice", device_id, asked.identity, NOW)
        head = DeviceListHead.issue(
            ACCOUNT, "alice", 2, NOW, {1: EXISTING.public, device_id: asked.identity}
        )
        return self.offer.seal_grant(ACCOUNT, certificate, head, b"\x00\x00\x00\x00")


def exchange(code: LinkCode | None = None) -> Exchange:
    offer = LinkOffer.create(now=NOW)
    return Exchange(offer, LinkJoiner(code or offer.code), IdentityKeyPair.generate())


def _reason(info: pytest.ExceptionInfo[LinkError]) -> str:
    return info.value.reason


def test_a_correct_link_hands_over_the_account() -> None:
    run = exchange()
    code = LinkJoiner.from_text(run.offer.code.text()).code
    assert code == run.offer.code
    grant = run.joiner.open_grant(run.grant(run.request()))
    assert grant.account.public == ACCOUNT.public
    assert grant.certificate.names(2, run.device.public)
    assert grant.head.names(2, run.device.public)
    assert run.offer.state is LinkState.DONE
    assert run.joiner.state is LinkState.DONE


def test_codes_are_typeable_and_forgiving() -> None:
    code = LinkCode(bytes(range(9)), b"\xde\xad\xbe\xef")
    text = code.text()
    groups = text.split("-")
    assert [len(group) for group in groups] == [4] * 6
    assert set(text.replace("-", "")) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert LinkCode.parse(text.lower().replace("-", " ")) == code
    sloppy = text.replace("0", "O").replace("1", "l")
    assert LinkCode.parse(sloppy) == code
    assert code.relay_id == bytes(range(9)).hex()


def test_every_single_typo_is_caught_as_a_wrong_code() -> None:
    text = LinkCode(bytes(range(9)), b"\xde\xad\xbe\xef").text().replace("-", "")
    for index, letter in enumerate(text):
        for other in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
            if other != letter:
                with pytest.raises(LinkError) as info:
                    LinkCode.parse(text[:index] + other + text[index + 1 :])
                assert _reason(info) == "wrong_code"


@pytest.mark.parametrize("text", ["", "ABCD", "U" * 24, "ABCD-EFGH-JKMN-PQRS-TVWX-YZ0!", "A" * 25])
def test_malformed_codes_are_wrong_codes(text: str) -> None:
    with pytest.raises(LinkError) as info:
        LinkCode.parse(text)
    assert _reason(info) == "wrong_code"


def _guessed_request(run: Exchange, secret: bytes) -> bytes:
    """A request from someone who knows the fingerprint (public) but guesses the secret."""
    guess = LinkCode(run.offer.code.fingerprint, secret)
    return LinkJoiner(guess).request_message(
        run.offer.offer_message(), IdentityKeyPair.generate(), "alice", 9
    )


def test_a_code_with_the_wrong_secret_fails_on_the_existing_device_and_voids_it() -> None:
    run = exchange()
    guessed = _guessed_request(run, b"\x00\x00\x00\x01")
    with pytest.raises(LinkError) as info:
        run.offer.open_request(guessed, now=NOW + 1)
    assert _reason(info) == "tampered"
    with pytest.raises(LinkError) as info:  # the right code no longer works either
        run.offer.open_request(run.request(), now=NOW + 2)
    assert _reason(info) == "used"


def test_a_code_for_another_offer_fails_on_the_new_device() -> None:
    run = exchange(LinkOffer.create(now=NOW).code)
    with pytest.raises(LinkError) as info:
        run.request()
    assert _reason(info) == "tampered"
    assert run.joiner.state is LinkState.FAILED


def test_an_expired_code_is_refused() -> None:
    run = exchange()
    request = run.request()
    with pytest.raises(LinkError) as info:
        run.offer.open_request(request, now=NOW + LINK_CODE_LIFETIME + 1)
    assert _reason(info) == "expired"
    with pytest.raises(LinkError) as info:
        run.offer.open_request(request, now=NOW + 1)
    assert _reason(info) == "expired"


def test_a_code_used_twice_is_refused() -> None:
    run = exchange()
    run.joiner.open_grant(run.grant(run.request()))
    second = LinkJoiner(run.offer.code).request_message(
        run.offer.offer_message(), IdentityKeyPair.generate(), "alice", 3
    )
    with pytest.raises(LinkError) as info:
        run.offer.open_request(second, now=NOW + 2)
    assert _reason(info) == "used"
    with pytest.raises(LinkError):
        run.offer.seal_grant(ACCOUNT, *_certificate_and_head(run), b"")


def _certificate_and_head(run: Exchange) -> tuple[DeviceCertificate, DeviceListHead]:
    certificate = DeviceCertificate.issue(ACCOUNT, "alice", 2, run.device.public, NOW)
    head = DeviceListHead.issue(ACCOUNT, "alice", 2, NOW, {2: run.device.public})
    return certificate, head


def test_a_relay_swapping_the_offer_key_fails_on_both_sides() -> None:
    """The server offers its own key to the new device and asks the old one itself."""
    run = exchange()
    server = LinkOffer.create(now=NOW)
    with pytest.raises(LinkError) as info:
        run.request(server.offer_message())  # E_A replaced: the code's fingerprint catches it
    assert _reason(info) == "tampered"
    # The server cannot complete the other half either: it does not know the secret.
    forged = _guessed_request(run, b"gues")
    with pytest.raises(LinkError) as info:
        run.offer.open_request(forged, now=NOW + 1)
    assert _reason(info) == "tampered"


def test_a_relay_swapping_the_request_key_fails_on_both_sides() -> None:
    run = exchange()
    request = run.request()
    swapped = request[:2] + LinkOffer.create(now=NOW).public_key + request[34:]
    with pytest.raises(LinkError) as info:
        run.offer.open_request(swapped, now=NOW + 1)
    assert _reason(info) == "tampered"
    # Whatever the relay then hands the new device as a grant, it fails there too.
    other = exchange()
    forged_grant = other.grant(other.request())
    with pytest.raises(LinkError) as info:
        run.joiner.open_grant(forged_grant)
    assert _reason(info) == "tampered"


def test_every_flipped_bit_of_the_offer_and_the_request_fails() -> None:
    for bit in range(len(LinkOffer.create(now=NOW).offer_message()) * 8):
        run = exchange()
        with pytest.raises(LinkError):
            run.request(flip_bit(run.offer.offer_message(), bit))
    run = exchange()
    length = len(run.request()) * 8
    for bit in range(length):
        run = exchange()
        with pytest.raises(LinkError):
            run.offer.open_request(flip_bit(run.request(), bit), now=NOW + 1)


def test_every_flipped_bit_of_the_grant_fails() -> None:
    run = exchange()
    length = len(run.grant(run.request())) * 8
    for bit in range(length):
        run = exchange()
        grant = run.grant(run.request())
        with pytest.raises(LinkError):
            run.joiner.open_grant(flip_bit(grant, bit))


def test_a_grant_for_another_device_is_refused_by_the_new_device() -> None:
    run = exchange()
    grant = run.grant(run.request(), device_id=7)  # not the id the new device asked for
    with pytest.raises(LinkError) as info:
        run.joiner.open_grant(grant)
    assert _reason(info) == "tampered"


def test_a_refused_request_voids_the_code() -> None:
    run = exchange()
    run.offer.open_request(run.request(), now=NOW + 1)
    error = run.offer.refuse("device id taken")
    assert error.reason == "refused"
    assert run.offer.state is LinkState.FAILED
    with pytest.raises(LinkError):
        run.offer.seal_grant(ACCOUNT, *_certificate_and_head(run), b"")
