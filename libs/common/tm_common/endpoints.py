"""The public venue endpoints that the services' defaults name, in one place (settings override
them: testnet, or the exchange sim)."""

from __future__ import annotations

BYBIT_MAINNET_REST = "https://api.bybit.com"
BYBIT_TESTNET_REST = "https://api-testnet.bybit.com"
BYBIT_MAINNET_PUBLIC_WS = "wss://stream.bybit.com/v5/public/linear"
BYBIT_MAINNET_PRIVATE_WS = "wss://stream.bybit.com/v5/private"
BYBIT_TESTNET_PRIVATE_WS = "wss://stream-testnet.bybit.com/v5/private"
DERIBIT = "https://www.deribit.com"
