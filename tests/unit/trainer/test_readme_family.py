"""The README's "Plug in your own signal" example is true: its code, registered as the README
says, passes the family contract (``test_family_contract.py``) and trains and serves."""

from __future__ import annotations

import re
import types
from pathlib import Path
from types import MappingProxyType

import numpy as np
from tm_quant import families

from . import test_family_contract as contract

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_family() -> types.ModuleType:
    text = README.read_text()
    block = re.search(r"<!-- family-example: begin -->\n```python\n(.*?)```\n"
                      r"<!-- family-example: end -->", text, re.S)
    assert block, "README: the family example block is missing"
    mod = types.ModuleType("tm_quant.families.mine")
    exec(compile(block.group(1), "README.md:family-example", "exec"), mod.__dict__)  # noqa: S102
    return mod


def test_the_readme_family_keeps_the_contract_and_serves_what_it_trained(monkeypatch):
    mine = readme_family()
    fam = mine.FAMILY
    assert fam.name == "mine" and fam.features == ("ret_6", "ret_42", "rsi_14")
    contract.check_fit(fam)
    contract.check_predict(fam)
    # step 2 of the README: registered beside the example
    monkeypatch.setattr(families, "FAMILIES", MappingProxyType({**families.FAMILIES, "mine": fam}))
    assert "mine" in families.known()
    contract.check_pipeline("mine")
    p = fam.predict(fam.fit(contract._rows(fam)), np.zeros((2, 3)))
    assert p.shape == (2,)
