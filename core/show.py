"""``/show <job id>``: an earlier result posted again, from the stored files, with
the caption and buttons it was delivered with. Nothing is charged and no vendor
is called.

Users name a job by its short id (``core.job_ids``, listed by ``/history``). A
user may show only their own jobs, an admin anyone's. Someone else's job reads as
"not found", so nobody learns which ids exist."""

from __future__ import annotations

from collections.abc import Callable

from core.errors import InvalidRequest, ResultGone
from core.images import read_outputs
from core.job_ids import parse_job_id, short_id
from core.job_params import JobResult, load_request
from core.jobs import job_context
from core.messages import Messages
from core.ports import ChatRef, Delivery, UserRef
from storage.files import FileStore
from storage.interfaces import JobRecord, JobState, Store


class Shows:
    def __init__(
        self,
        store: Store,
        files: FileStore,
        text: Messages,
        is_admin: Callable[[UserRef], bool],
        default_locale: str = "en",
    ) -> None:
        self.store = store
        self.files = files
        self.text = text
        self.is_admin = is_admin
        self.default_locale = default_locale

    async def find(self, actor: UserRef, typed: str) -> JobRecord:
        """The job ``typed`` names among those ``actor`` may show."""
        prefix = parse_job_id(typed)
        admin = self.is_admin(actor)
        async with self.store.read() as tx:
            account_id = None
            if not admin:
                account = await self.store.ledger.find_account(tx, actor.platform, actor.user_id)
                if account is None:
                    raise InvalidRequest("no such job", kind="show_not_found", job=prefix)
                account_id = account.id
            found = await self.store.jobs.with_prefix(tx, prefix, account_id=account_id, limit=2)
        if not found:
            raise InvalidRequest("no such job", kind="show_not_found", job=prefix)
        if len(found) > 1:
            raise InvalidRequest("ambiguous id", kind="show_ambiguous", job=prefix)
        return found[0]

    async def delivery(self, actor: UserRef, typed: str, chat: ChatRef, locale: str) -> Delivery:
        """The job's result as a ``Delivery`` to ``chat``, worded in ``locale``."""
        job = await self.find(actor, typed)
        result = JobResult.from_json(job.result)
        delivered = job.state == JobState.SUCCEEDED or result.delivered is not None
        if not delivered or not result.files:
            raise InvalidRequest("never delivered", kind="show_not_delivered", job=short_id(job.id))
        try:
            blobs = [await self.files.get(key) for key in result.files]
        except OSError:
            raise ResultGone(job=short_id(job.id)) from None
        images = await read_outputs(blobs)
        owner = job_context(job, self.default_locale).user
        if owner.key != actor.key:
            async with self.store.transaction() as tx:
                await self.store.audit.record(tx, actor.key, "show_job", owner.key, job.id, True)
        request = load_request(job.params)
        cost = job.cost or 0
        balance = result.balance_after
        if balance is None:  # delivered before captions' balances were kept
            async with self.store.read() as tx:
                balance = (await self.store.ledger.balance(tx, job.account_id)).available
        return Delivery(
            job_id=job.id,
            chat=chat,
            user=owner,
            request=request,
            images=images,
            cost=cost,
            balance_after=balance,
            locale=locale,
            caption=self.text.caption(locale, request.prompt, cost, balance, result.revised_prompt),
            revised_prompt=result.revised_prompt,
        )
