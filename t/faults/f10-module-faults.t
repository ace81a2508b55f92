# faults under a steady load of signed webhooks: Redis killed, Redis
# frozen, nginx reloaded and upgraded in place; one summary line each
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use WaTest;
use WaLoad qw(bodies start_load finish_load summary);

my @aof = ('--appendonly', 'yes', '--appendfsync', 'always');
my @lines;

sub report {
    my ($t, $name, $bodies, $res, $want_refused) = @_;
    my ($line, $acc, $ref, $lost, $dup) = summary($t, $name, $bodies, $res);
    push @lines, $line;
    diag $line;
    is $acc, scalar @$bodies, "$name: every body accepted in the end";
    is $lost, 0, "$name: nothing lost";
    is $dup, 0, "$name: nothing duplicated";
    ok $ref > 0, "$name: the fault was felt ($ref refusals)"
        if $want_refused;
}

# --- Redis killed with SIGKILL and restarted ------------------------------
{
    my $t = WaTest->new;
    $t->start_redis(@aof);
    $t->start_nginx(redis_timeout => '1s');
    my @b = bodies('kill', 1500);
    my $load = start_load($t, \@b, rate => 300);
    sleep 1.5;
    $t->stop('redis', 'KILL');
    sleep 0.7;
    $t->start_redis(@aof);
    my $res = finish_load($load);
    report($t, 'redis SIGKILL + restart', \@b, $res, 1);
}

# --- Redis frozen (SIGSTOP) then resumed ----------------------------------
{
    my $t = WaTest->new;
    $t->start_redis(@aof);
    $t->start_nginx(redis_timeout => '500ms');
    my @b = bodies('stop', 1000);
    my $load = start_load($t, \@b, rate => 300);
    sleep 1;
    kill 'STOP', $t->{pids}{redis};
    my $t0 = time;
    my $st = $t->get('/wa-status')->{status};
    my $took = time - $t0;
    is $st, 200, 'while Redis is frozen nginx serves other locations';
    ok $took < 0.5, sprintf 'at once (%.3fs)', $took;
    sleep 1.5;
    kill 'CONT', $t->{pids}{redis};
    my $res = finish_load($load);
    report($t, 'redis SIGSTOP + SIGCONT', \@b, $res, 1);
    my $timeouts = grep { /did not answer within/ } split /\n/, $t->error_log;
    ok $timeouts > 0, "requests timed out into 503 ($timeouts)";
}

# --- nginx reload (SIGHUP) under load, twice --------------------------------
{
    my $t = WaTest->new;
    $t->start_redis;
    $t->start_nginx;
    my @b = bodies('hup', 1500);
    my $load = start_load($t, \@b, rate => 300);
    for (1 .. 2) { sleep 1.5; $t->reload_nginx }
    my $res = finish_load($load);
    my $refused = grep { grep { $_ != 200 } @{ $_->{statuses} } } values %$res;
    report($t, 'nginx reload x2', \@b, $res);
    is $refused, 0, 'no request failed during the reloads';
}

# --- nginx binary upgrade in place (USR2, then QUIT the old master) --------
{
    my $t = WaTest->new;
    $t->start_redis;
    $t->start_nginx(daemon => 1);
    my @b = bodies('usr2', 1500);
    my $load = start_load($t, \@b, rate => 300);
    sleep 1.5;
    my $old = $t->nginx_pid;
    kill 'USR2', $old;
    my $new;
    $t->wait_for(sub {
        open my $fh, '<', $t->dir . '/nginx.pid' or return 0;
        ($new) = <$fh> =~ /(\d+)/;
        $new && $new != $old;
    }, 10);
    ok $new && $new != $old, "a new master runs ($new)";
    $t->wait_for(sub { `pgrep -P $new` =~ /\d/ }, 10);
    sleep 0.5;
    kill 'QUIT', $old;
    my $res = finish_load($load);
    my $refused = grep { grep { $_ != 200 } @{ $_->{statuses} } } values %$res;
    report($t, 'nginx USR2 + QUIT', \@b, $res);
    is $refused, 0, 'no request failed during the upgrade';
    $t->{pids}{nginx} = $new;
    $t->stop('nginx', 'QUIT');
}

diag "fault summary:\n" . join "\n", @lines;

done_testing;
