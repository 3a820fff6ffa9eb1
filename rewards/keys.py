"""Idempotency keys of epoch payouts, which settlement posts and holds and dispute corrections look up."""


def reward_key(epoch_id: int, expert_id: int) -> str:
    return f"epoch:{epoch_id}:reward:{expert_id}"


def claim_key(epoch_id: int, expert_id: int) -> str:
    return f"epoch:{epoch_id}:claim:{expert_id}"
