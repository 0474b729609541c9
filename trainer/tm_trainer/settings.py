"""The training job's settings (``tm train``, ``tm models``, the CronJobs): the common ``TM_*``
fields plus its own ``TM_TRAINER_*`` ones.

``TM_TRAINER_SIGNING_KEY_MODELS_PROMOTED``: the key the ``models.promoted`` events it publishes
are signed with (:mod:`tm_common.bus.signing`); signal, regime and the sizer verify them. Unset,
a local stack's key is used when ``TM_DATA_DIR`` holds one (``tm up``, ``tm demo`` keep their
keys there), so ``tm models promote`` beside a running ``tm up`` is verified like the trainer's
CronJob in the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from tm_common.bus.signing import TRAINER_ENV_PREFIX, read_local_keys, signing_key
from tm_common.bus.streams import MODELS_PROMOTED
from tm_common.settings import CommonSettings


class TrainerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix=TRAINER_ENV_PREFIX)
    service_name: str = "trainer"
    signing_key_models_promoted: SecretStr | None = signing_key(MODELS_PROMOTED)

    @model_validator(mode="before")
    @classmethod
    def _local_stack_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("signing_key_models_promoted"):
            key = read_local_keys(Path(data.get("data_dir") or ".tm")).get(MODELS_PROMOTED)
            if key is not None:
                data = {**data, "signing_key_models_promoted": key}
        return data
