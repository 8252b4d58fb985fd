"""``train.epoch_sampling``: an epoch over the events, or user-uniform (LightGCN's sampler)."""

import numpy as np
import pytest

import tgraph.models as models
from tests.models.helpers import random_split
from tgraph.config import validate_model
from tgraph.data.protocols import lightgcn
from tgraph.errors import ConfigError
from tgraph.train import Trainer, seed_everything
from tgraph.train.config import TrainConfig
from tgraph.train.epoch_order import UserSamples


def test_user_samples_hand_case():
    """Users [0, 0, 0, 1]: user 1's only sample is drawn half the time (an epoch over the
    events visits it a quarter of the time), user 0's three samples a sixth each."""
    draws = UserSamples(np.array([0, 1, 0, 0])).draw(60_000, np.random.default_rng(0))
    share = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(share, [1 / 6, 1 / 2, 1 / 6, 1 / 6], atol=0.01)


def test_user_samples_refuses_no_samples():
    with pytest.raises(ValueError, match="no training samples"):
        UserSamples(np.array([], dtype=np.int64))


def test_default_is_left_out_of_the_dump_so_fingerprints_stay():
    assert "epoch_sampling" not in TrainConfig().model_dump()
    assert TrainConfig(epoch_sampling="users").model_dump()["epoch_sampling"] == "users"
    with pytest.raises(ConfigError, match="epoch_sampling"):
        validate_model(TrainConfig, {"epoch_sampling": "items"}, "train")


def _trainer(split, **options):
    seed_everything(0)
    config = dict(epochs=2, batch_size=64, lr=0.01, progress=False, **options)
    return Trainer(models.get("lightgcn")(split), split, config)


def test_users_epoch_has_as_many_samples_and_trains():
    split = random_split()
    trainer = _trainer(split, epoch_sampling="users")
    queries, positives = trainer._samples
    order = trainer._epoch_order()
    assert len(order) == len(positives) and order.min() >= 0 and order.max() < len(positives)
    assert len(np.unique(order)) < len(order)  # drawn with replacement, not a permutation
    trainer.fit()
    assert np.isfinite([r.loss for r in trainer.history]).all()


def test_events_epoch_is_a_permutation_and_unchanged():
    split = random_split()
    order = _trainer(split)._epoch_order()
    assert np.array_equal(np.sort(order), np.arange(len(order)))
    assert np.array_equal(order, np.random.default_rng(0).permutation(len(order)))


def test_users_epoch_on_gowalla_weighs_every_user_alike(root):
    """On the LightGCN Gowalla split an epoch over the events draws a user in proportion to
    their training pairs (20 to 1,000s); a user-uniform epoch draws each about
    ``n_samples / n_users`` = 27 times, whatever their number of pairs."""
    split = lightgcn(root, valid_ratio=0.05, seed=0)
    users = split.train.events["user"].to_numpy()
    samples = UserSamples(users)
    assert samples.n_users == 29_858
    drawn = users[samples.draw(len(users), np.random.default_rng(0))]
    per_user = np.bincount(drawn, minlength=29_858)
    per_event = np.bincount(users, minlength=29_858)
    mean = len(users) / 29_858
    assert per_user.mean() == pytest.approx(mean)
    # Poisson-like spread around the mean, independent of the user's pairs
    assert per_user.std() == pytest.approx(np.sqrt(mean), rel=0.05)
    heavy = per_event >= np.quantile(per_event, 0.99)
    assert per_user[heavy].mean() == pytest.approx(mean, rel=0.1)
    assert per_event[heavy].mean() > 5 * mean
