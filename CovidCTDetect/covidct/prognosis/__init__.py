"""Prognosis from deep and clinical features: COVID-19Net's second purpose (Wang et al. 2020).

* :mod:`.tables` — read the features CSV (id + f0…f63) and the clinical CSV (id, time, event,
  covariates) and join them: :func:`load_cohort`.
* :mod:`.encoding` — standardisation and one-hot encoding (the model's scaler): :class:`Encoder`.
* :mod:`.selection` — stepwise selection (forward/backward/both, AIC or p-value): :func:`stepwise`.
* :mod:`.cox` — lifelines Cox fit and the JSON model :class:`CoxModel` (hazards without lifelines).
* :mod:`.survival` — Kaplan-Meier curves, log-rank test, concordance.
* :mod:`.pca` — PCA plot of the deep features.
* :mod:`.workflow` — :func:`fit_prognosis`, :func:`predict_prognosis` and the files they write.

Example::

    from covidct.prognosis import load_cohort, fit_prognosis, write_fit, CoxModel, predict_prognosis
    cohort = load_cohort("features.csv", "clinical.csv", time_column="hospital_days", event_column="discharged")
    model, report, table = fit_prognosis(cohort, event_is_favourable=True)
    write_fit(model, report, table, cohort, "prognosis-model/")
    table, report = predict_prognosis(CoxModel.load("prognosis-model/"), validation_cohort)
"""

from .cox import CoxModel
from .tables import Cohort, load_cohort
from .workflow import fit_prognosis, predict_prognosis, write_fit, write_prediction

__all__ = ["Cohort", "CoxModel", "fit_prognosis", "load_cohort", "predict_prognosis", "write_fit", "write_prediction"]
