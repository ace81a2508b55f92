# concurrency, nginx reload and graceful shutdown with requests in flight,
# clients that go away
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

# clients that post n bodies each; exit status = how many were not 200
sub clients {
    my ($tag, $nclients, $each) = @_;
    my @pids;
    for my $c (1 .. $nclients) {
        my $pid = fork // die;
        if (!$pid) {
            my $bad = 0;
            for my $i (1 .. $each) {
                my $b = messages_body(messages =>
                                      [ text_message("wamid.$tag.$c.$i", 'x') ]);
                $bad++ if $t->post($b)->{status} != 200;
            }
            exit($bad > 250 ? 250 : $bad);
        }
        push @pids, $pid;
    }
    return @pids;
}

sub reap {
    my $bad = 0;
    for (@_) { waitpid $_, 0; $bad += $? >> 8 }
    return $bad;
}

my @p = clients('C', 4, 100);
is reap(@p), 0, '4 concurrent clients x 100 posts: all 200';
is $t->xlen('wa:messages'), 400, '400 events';

# reload while clients post: once they are under way, and not done
@p = clients('H', 4, 150);
$t->wait_for(sub { $t->xlen('wa:messages') >= 500 }, 60);
my $len = $t->xlen('wa:messages');
ok $len >= 500 && $len < 1000, "reloaded with $len of 1000 in";
$t->reload_nginx;
ok $t->wait_log(qr/reconfiguring/), 'reload started';
is reap(@p), 0, 'reload under load: every request 200';
is $t->xlen('wa:messages'), 1000, 'and every event there';
ok $t->wait_log(qr/whatsapp redis: connected.*\n(?s:.*)whatsapp redis: connected/),
    'the new worker connected';

# a client that gives up while Redis is frozen: the worker survives.  It
# goes once nginx has sent its append towards Redis (bytes queued there).
$t->freeze('redis');
my $queued = WaTest::tcp_queued($t->redis_port);
{
    my $b = messages_body(messages => [ text_message('wamid.GONE', 'x') ]);
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port) or die "connect: $!";
    print $s "POST /webhook HTTP/1.1\r\nHost: t\r\n"
        . 'X-Hub-Signature-256: ' . WaTest::sign($t->{secret}, $b) . "\r\n"
        . 'Content-Length: ' . length($b) . "\r\n\r\n$b";
    ok $t->wait_for(sub { WaTest::tcp_queued($t->redis_port) > $queued }, 30),
        'its append is on its way to the frozen Redis';
    close $s;
}
$t->thaw('redis');
my $b = messages_body(messages => [ text_message('wamid.AFTER', 'x') ]);
is $t->post($b)->{status}, 200, 'served after a client went away';
unlike $t->error_log, qr/signal \d+ \(SIG(SEGV|ABRT|BUS)\)|exited on signal/,
    'no worker crashed';

# graceful shutdown waits for the request in flight: its append on the
# way to the frozen Redis when nginx is told to quit, and Redis thawed
# once the worker is shutting down
$t->freeze('redis');
$queued = WaTest::tcp_queued($t->redis_port);
my $pid = fork // die;
if (!$pid) {
    my $b = messages_body(messages => [ text_message('wamid.LAST', 'x') ]);
    exit($t->post($b)->{status} == 200 ? 0 : 1);
}
ok $t->wait_for(sub { WaTest::tcp_queued($t->redis_port) > $queued }, 30),
    'the request is in flight';
kill 'QUIT', $t->nginx_pid;
ok $t->wait_log(qr/gracefully shutting down/, 30), 'nginx is shutting down';
$t->thaw('redis');
waitpid $pid, 0;
is $? >> 8, 0, 'in-flight request answered 200 during graceful shutdown';
ok $t->stop_nginx, 'nginx exited';
my @ids = map { $_->{msg_id} } $t->stream_events('wa:messages');
ok((grep { $_ eq 'wamid.LAST' } @ids), 'its event is in the stream');

done_testing;
