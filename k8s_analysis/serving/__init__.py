"""The HTTP prediction server: KServe V1 and Open Inference Protocol (V2) routes over the promoted model.

``settings`` contains what the command line sets, ``models`` loads and hot-reloads the model,
``protocol`` turns request bodies into texts and predictions into response bodies,
``metrics`` exposes Prometheus counters, ``app`` wires the routes and ``server`` runs uvicorn.
Nothing here imports TensorFlow: prediction goes through ``k8s_analysis.model.bundle.Predictor``.
"""
