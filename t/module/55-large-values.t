# A signed body with one huge object (a change's value of 220k keys, about
# 3.5 MB) is split, and the time that takes does not count against
# whatsapp_redis_timeout: its Redis timer starts from the time read after
# the split, not from nginx's cached time of before it.  The timeout is set
# from what the split takes on this machine.
# The next posts on the same worker are answered as usual.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use WaTest;
use WaBody qw(text_message messages_body change_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx(redis_timeout => '10s');

my $keys = 220_000;
my $value = '{' . join(',', map { qq("k$_":$_) } 1 .. $keys) . '}';
sub huge {
    return qq({"object":"whatsapp_business_account","entry":[{"id":"55",)
        . qq("time":$_[0],"changes":[{"field":"huge","value":$value}]}]});
}
note sprintf '%d keys, %.1f MB', $keys, length(huge(1)) / 1e6;

# Redis's own time in FCALLs so far, in seconds (INFO commandstats)
sub fcall_seconds {
    my $info = $t->redis('INFO', 'commandstats') // '';
    return $info =~ /^cmdstat_fcall:calls=\d+,usec=(\d+)/m ? $1 / 1e6 : 0;
}

# first with a timeout far longer than it all: how long the split takes
# on this machine (the answer's time less Redis's)
my ($r0, $t0) = (fcall_seconds(), time);
my $r = $t->post(huge(1751247548));
my $took = time - $t0;
my $redis = fcall_seconds() - $r0;
is $r->{status}, 200, 'the huge body: 200' or diag $r->{content};
note sprintf 'answered in %.2f s, %.3f s of it in Redis', $took, $redis;

my @e = $t->stream_events('wa:account');
is scalar @e, 1, 'one event';
is $e[0]{kind}, 'huge', 'of the change';
is scalar(keys %{ $e[0] }), 48 + 1, 'the first fields, the rest in raw';
is length $e[0]{raw}, length $value, 'raw holds the whole value';

# then with a timeout half the split's time, and three times Redis's: were
# the split counted against it, the next huge body would time out
my $ms = int(($took - $redis) * 1000 / 2);
SKIP: {
    skip sprintf('the split took %.3f s, too little against Redis\'s '
                 . '%.3f s to tell them apart', $took - $redis, $redis), 2
        if $ms < 3 * $redis * 1000 || $ms < 20;
    my $up = $t->log_count(qr/whatsapp redis: connected/);
    $t->reload_nginx(redis_timeout => "${ms}ms");
    $t->wait_for(sub { $t->log_count(qr/whatsapp redis: connected/) > $up },
                 30);
    is $t->post(huge(1751247549))->{status}, 200,
        "within whatsapp_redis_timeout ${ms}ms, the split not counted";
    unlike $t->error_log, qr/did not answer within|dropping the connection/,
        'no timeout and no reset of the link';
}

for my $n (1 .. 3) {
    is $t->post(messages_body(messages => [ text_message("wamid.L$n", 'x') ]))
        ->{status}, 200, "a post after it: 200 ($n)";
}

done_testing;
