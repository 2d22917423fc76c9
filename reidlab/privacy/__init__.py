"""Privacy: how identifiable a face still is after anonymization (issue 12).

* :mod:`reidlab.privacy.faces`: the face region of each crop, cut after anonymizing the whole
  crop exactly as the released data would be;
* :mod:`reidlab.privacy.attacker`: a face-only re-identification attacker (a small CNN trained on
  train identities, tested on query/gallery identities) and the chance levels beside its numbers;
* :mod:`reidlab.privacy.curve`: the privacy-utility curve per method and strength, and the
  computed recommendation.

Threat models, chance levels and the split rule: ``docs/architecture.md``, section "Privacy".
Heavy imports (torch) happen inside the functions, so ``import reidlab.privacy`` stays light.
"""

from __future__ import annotations

__all__ = ["attacker", "curve", "faces"]
