# faults under a steady load of signed webhooks: Redis killed, Redis
# frozen, nginx reloaded and upgraded in place; one summary line each.
# Each fault comes once the load is under way (entries in the stream, not
# a time), lasts until nginx shows it felt it, and ends before the load does
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
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

# the load has put n events in the stream, and is not done
sub under_way {
    my ($t, $n, $of) = @_;
    $t->wait_for(sub { $t->xlen('wa:messages') >= $n }, 60);
    my $len = $t->xlen('wa:messages');
    ok $len >= $n && $len < $of, "the fault comes with $len of $of in";
}

# --- Redis killed with SIGKILL and restarted ------------------------------
{
    my $t = WaTest->new;
    $t->start_redis(@aof);
    $t->start_nginx(redis_timeout => '1s');
    my @b = bodies('kill', 1500);
    my $load = start_load($t, \@b, rate => 300);
    under_way($t, 300, 1500);
    $t->stop('redis', 'KILL');
    # down until nginx has refused a request of the load for it
    ok $t->wait_for(sub { $t->status_counters->{redis_unavailable} }, 30),
        'refused while Redis is down';
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
    under_way($t, 300, 1000);
    $t->freeze('redis');
    # were the page waiting on Redis, it would answer once Redis is thawed,
    # which comes after it: the HTTP client's timeout, and a 599
    my $t0 = time;
    my $st = $t->get('/wa-status')->{status};
    my $took = time - $t0;
    is $st, 200, 'while Redis is frozen nginx serves other locations';
    ok $took < 5, sprintf 'at once (%.3fs)', $took;
    # frozen until requests of the load timed out on it
    ok $t->wait_log(qr/did not answer within/, 30), 'requests timed out';
    $t->thaw('redis');
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
    for my $at (300, 800) {
        under_way($t, $at, 1500);
        my $up = $t->log_count(qr/whatsapp redis: connected/);
        $t->reload_nginx;
        ok $t->wait_for(sub { $t->log_count(qr/whatsapp redis: connected/)
                              > $up }, 30), 'the new worker connected';
    }
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
    under_way($t, 300, 1500);
    my $up = $t->log_count(qr/whatsapp redis: connected/);
    my $old = $t->nginx_pid;
    kill 'USR2', $old;
    my $new;
    $t->wait_for(sub {
        open my $fh, '<', $t->dir . '/nginx.pid' or return 0;
        ($new) = <$fh> =~ /(\d+)/;
        $new && $new != $old;
    }, 10);
    ok $new && $new != $old, "a new master runs ($new)";
    # the old master goes once the new one's worker has its link up
    ok $t->wait_for(sub { $t->log_count(qr/whatsapp redis: connected/)
                          > $up }, 30), "the new master's worker connected";
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
