"""Python client for the DataDAO Feedback API (docs/api.md)."""
from datadao_client.campaigns import Campaign, Campaigns, FundResult, ImportResult
from datadao_client.client import Client
from datadao_client.errors import DataDAOError, ExportFailed
from datadao_client.exports import Export

__all__ = ["Campaign", "Campaigns", "Client", "DataDAOError", "Export", "ExportFailed", "FundResult", "ImportResult"]
