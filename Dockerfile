# gateway: streaming media gateway for Axis (VAPIX) IP cameras.
#
#   docker build -t gateway .
#   docker run --rm --network host -v $PWD/config/gateway.toml:/etc/gateway/gateway.toml gateway
#
# Use host networking: WebRTC (WHEP) hands browsers ICE candidates with the host's own
# addresses and UDP ports chosen at run time, which port publishing (-p) cannot map.
# With host networking the default listen address 127.0.0.1:8080 is the host's loopback;
# to serve other machines set [server] listen = "0.0.0.0:8080" and configure [[users]].
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install . && rm -rf /src
COPY config/gateway.toml /etc/gateway/gateway.toml

RUN useradd --system --no-create-home gateway
USER gateway
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/gateway.toml"]
