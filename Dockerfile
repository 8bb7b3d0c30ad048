# syntax=docker/dockerfile:1
# One image for every role; the sub-command picks it:
#   docker run streamreco worker | collector | produce --rate 500 | replay --rate 200
# Configure with STREAMRECO_* environment variables (streamreco/settings.py).

# --- build: install streamreco and its dependencies into a virtualenv --------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY . .
RUN pip install .
# compile the numba kernels once, into the package's __pycache__ (a worker would take a few seconds)
RUN cd / && python -c "import doctest, online_models.cooccurrence as m; assert not doctest.testmod(m).failed"

# --- runtime: the virtualenv only, run as a non-root user -------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin streamreco
COPY --from=build /opt/venv /opt/venv

USER 10001
# Faust keeps its data directory (<app_id>-data) in the working directory.
WORKDIR /home/streamreco

# worker web (GET /health, GET /recommendations/{user_id}); collector (POST /events)
EXPOSE 6066 8080

ENTRYPOINT ["streamreco"]
CMD ["worker"]
