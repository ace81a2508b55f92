# A signed body with one huge object (a change's value of 220k keys, about
# 3.5 MB) is split in time linear in its size, and the time that takes does
# not count against whatsapp_redis_timeout: its Redis timer starts from the
# time read after the split, not from nginx's cached time of before it.
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
$t->start_nginx(redis_timeout => '100ms');

my $keys = 220_000;
my $value = '{' . join(',', map { qq("k$_":$_) } 1 .. $keys) . '}';
my $body = qq({"object":"whatsapp_business_account","entry":[{"id":"55",)
    . qq("time":1751247548,"changes":[{"field":"huge","value":$value}]}]});
note sprintf '%d keys, %.1f MB', $keys, length($body) / 1e6;

my $t0 = time;
my $r = $t->post($body);
my $took = time - $t0;
is $r->{status}, 200, 'the huge body: 200' or diag $r->{content};
note sprintf 'answered in %.2f s', $took;

my @e = $t->stream_events('wa:account');
is scalar @e, 1, 'one event';
is $e[0]{kind}, 'huge', 'of the change';
is scalar(keys %{ $e[0] }), 48 + 1, 'the first fields, the rest in raw';
is length $e[0]{raw}, length $value, 'raw holds the whole value';

unlike $t->error_log, qr/did not answer within|dropping the connection/,
    'no timeout and no reset of the link';

for my $n (1 .. 3) {
    is $t->post(messages_body(messages => [ text_message("wamid.L$n", 'x') ]))
        ->{status}, 200, "a post after it: 200 ($n)";
}

done_testing;
