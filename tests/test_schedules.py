import pytest
import torch

from hf_mdm import SCHEDULES, NoiseSchedule, get_schedule, register_schedule
from hf_mdm.schedules import LinearSchedule


T = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_alpha_boundaries_and_monotone(name):
    schedule = get_schedule(name)
    assert float(schedule.alpha(torch.tensor(0.0))) == pytest.approx(1.0)
    assert float(schedule.alpha(torch.tensor(1.0))) == pytest.approx(0.0, abs=1e-3)
    assert bool((schedule.alpha(T).diff() < 0).all())


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_derivative_matches_autograd(name):
    schedule = get_schedule(name)
    t = T.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(schedule.alpha(t).sum(), t)
    torch.testing.assert_close(schedule.alpha_derivative(T), grad)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_weight_and_reveal_probability_follow_alpha(name):
    schedule = get_schedule(name)
    alpha, dalpha = schedule.alpha(T), schedule.alpha_derivative(T)
    torch.testing.assert_close(schedule.loss_weight(T), -dalpha / (1 - alpha))
    s = T * 0.5
    reveal = schedule.reveal_probability(T, s)
    torch.testing.assert_close(reveal, (schedule.alpha(s) - alpha) / (1 - alpha))
    assert bool(((reveal >= 0) & (reveal <= 1)).all())
    # revealing all the way to s = 0 reveals everything
    torch.testing.assert_close(schedule.reveal_probability(T, torch.zeros_like(T)), torch.ones_like(T))


def test_linear_weight_is_one_over_t():
    torch.testing.assert_close(get_schedule("linear").loss_weight(T), 1 / T)


def test_schedule_kwargs_and_instances_pass_through():
    schedule = get_schedule("polynomial", exponent=3.0)
    torch.testing.assert_close(schedule.alpha(T), 1 - T**3)
    assert get_schedule(schedule) is schedule
    assert schedule.to_dict() == {"name": "polynomial", "exponent": 3.0}


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="Unknown noise schedule 'cosin'.*linear"):
        get_schedule("cosin")


@pytest.mark.bad_input
def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="Bad schedule_kwargs"):
        get_schedule("linear", exponent=2)
    with pytest.raises(ValueError, match="positive exponent"):
        get_schedule("polynomial", exponent=0)
    with pytest.raises(ValueError, match="only accepted together with a schedule name"):
        get_schedule(LinearSchedule(), exponent=2)


def test_user_registered_schedule_is_found_by_name():
    @register_schedule("test-square-root")
    class SquareRoot(NoiseSchedule):
        def alpha(self, t):
            return 1 - t.sqrt()

        def alpha_derivative(self, t):
            return -0.5 / t.sqrt()

    try:
        assert isinstance(get_schedule("test-square-root"), SquareRoot)
        with pytest.raises(ValueError, match="already registered"):
            register_schedule("test-square-root")(SquareRoot)
    finally:
        SCHEDULES.pop("test-square-root")
