SERVICE_NAME = "eqsms_risk"  # the BentoML service and bento name (serving.service.RiskService)
